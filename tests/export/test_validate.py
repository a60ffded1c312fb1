"""The validator catches real mismatches between the version and the reference model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from export.errors import ValidationError
from export.validate import (
    SENTENCES,
    candidate_embeddings,
    compare,
    reference_embeddings,
    require,
)


@pytest.fixture(scope="module")
def reference(source_dir: Path) -> np.ndarray:
    return reference_embeddings(source_dir)


def test_sentences_cover_truncation_unicode_and_empty(version_dir: Path) -> None:
    from export.validate import load_runtime

    runtime = load_runtime(version_dir).EmbeddingRuntime(version_dir)
    lengths = [len(ids) for ids in runtime.tokenize(SENTENCES)]
    assert max(lengths) == 256  # at least one text is cut at max_seq_length
    assert "" in SENTENCES and any(ord(ch) > 0x3000 for text in SENTENCES for ch in text)
    assert len(SENTENCES) >= 16


def test_exported_version_passes(version_dir: Path, reference: np.ndarray) -> None:
    result = require(
        compare("fp32", reference, candidate_embeddings(version_dir), atol=1e-4, cosine_bound=0.999)
    )
    assert result.max_abs_diff < 1e-5 and result.min_cosine > 0.9999


def test_hub_tokenizer_truncation_is_caught(
    version_dir: Path, source_dir: Path, reference: np.ndarray, tmp_path: Path
) -> None:
    """The hub tokenizer.json truncates at 128, sentence-transformers at 256: must fail."""
    for name in ("model.onnx", "embedding_runtime.py"):
        (tmp_path / name).symlink_to(version_dir / name)
    shutil.copy(source_dir / "tokenizer.json", tmp_path / "tokenizer.json")
    result = compare(
        "fp32", reference, candidate_embeddings(tmp_path), atol=1e-4, cosine_bound=0.999
    )
    assert not result.passed
    with pytest.raises(ValidationError, match="fp32 graph failed validation"):
        require(result)


def test_mismatching_reference_model_is_caught(
    version_dir: Path, source_dir: Path, tmp_path: Path
) -> None:
    """A reference with CLS pooling (a different model, same weights) must not validate."""
    other = tmp_path / "cls-model"
    shutil.copytree(source_dir, other)
    pooling = other / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(config))
    result = compare(
        "fp32",
        reference_embeddings(other),
        candidate_embeddings(version_dir),
        atol=1e-4,
        cosine_bound=0.999,
    )
    assert not result.passed and result.min_cosine < 0.99


def test_compare_refuses_shape_mismatch() -> None:
    with pytest.raises(ValidationError, match="shape"):
        compare("x", np.ones((2, 3)), np.ones((2, 4)), atol=None, cosine_bound=0.9)


def test_mean_bound_is_enforced() -> None:
    reference = np.eye(4, dtype=np.float32)
    candidate = reference.copy()
    candidate[0] = [0.9, 0.436, 0, 0]  # cosine 0.9 on one row, 1.0 on the others
    result = compare(
        "int8", reference, candidate, atol=None, cosine_bound=0.85, mean_cosine_bound=0.99
    )
    assert result.min_cosine == pytest.approx(0.9, abs=1e-3)
    assert result.mean_cosine == pytest.approx(0.975, abs=1e-3)
    assert not result.passed
