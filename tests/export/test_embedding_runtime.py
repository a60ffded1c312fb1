"""The shared runtime (the exact file Triton runs) on an exported version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from export.validate import load_runtime


@pytest.fixture(scope="module")
def runtime(version_dir: Path):
    return load_runtime(version_dir).EmbeddingRuntime(version_dir)


def test_empty_inputs_do_not_crash(runtime) -> None:
    assert runtime.embed([]).shape == (0, 384)
    vectors = runtime.embed(["", " ", "\n\t"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_long_text_is_truncated_to_max_seq_length(runtime) -> None:
    (ids,) = runtime.tokenize(["word " * 1000])
    assert len(ids) == 256


def test_order_and_values_do_not_depend_on_inner_chunking(runtime) -> None:
    texts = [
        ("short" if i % 3 else "a much longer text about memory " * (i % 7 + 1)) + str(i)
        for i in range(150)
    ]
    whole = runtime.embed(texts)
    runtime.inner_batch = 1
    try:
        one_by_one = runtime.embed(texts)
    finally:
        runtime.inner_batch = 64
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)
    # Row i really is text i: identical texts give identical rows, different ones do not.
    assert np.allclose(runtime.embed([texts[5]])[0], whole[5], atol=1e-5)
    assert not np.allclose(whole[0], whole[1], atol=1e-3)


def test_tokenizer_without_truncation_is_refused(version_dir: Path, tmp_path: Path) -> None:
    for name in ("model.onnx", "embedding_runtime.py"):
        (tmp_path / name).symlink_to(version_dir / name)
    raw = json.loads((version_dir / "tokenizer.json").read_text())
    raw["truncation"] = None
    (tmp_path / "tokenizer.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="no truncation"):
        load_runtime(tmp_path).EmbeddingRuntime(tmp_path)


def test_runtime_imports_nothing_from_the_export_package(version_dir: Path) -> None:
    """It must load inside the Triton stub, where the repo root is not importable."""
    source = (version_dir / "embedding_runtime.py").read_text()
    assert "from export" not in source and "import export" not in source
