"""The fingerprint changes exactly when a version's contents would."""

from __future__ import annotations

from pathlib import Path

import pytest

from export import clip_config, reranker_config, triton_config
from export.fingerprint import fingerprint, source_digest, templates_digest

OPTIONS = {"quantize": None, "backend": "python", "tensorrt": False}
TEMPLATES = triton_config.TEMPLATES


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "weights.bin").write_bytes(b"\x00" * 10)
    return tmp_path


def test_stable_for_the_same_inputs(source: Path) -> None:
    assert fingerprint(source_digest(source), OPTIONS, TEMPLATES) == fingerprint(
        source_digest(source), dict(OPTIONS), list(TEMPLATES)
    )


def test_changes_with_content_name_and_options(source: Path) -> None:
    base = source_digest(source)
    (source / "sub" / "weights.bin").write_bytes(b"\x00" * 9 + b"\x01")
    changed_content = source_digest(source)
    (source / "sub" / "weights.bin").rename(source / "sub" / "weights2.bin")
    changed_name = source_digest(source)
    assert len({base, changed_content, changed_name}) == 3
    first = fingerprint(base, OPTIONS, TEMPLATES)
    assert first != fingerprint(base, {**OPTIONS, "quantize": "int8"}, TEMPLATES)
    assert first != fingerprint(base, {**OPTIONS, "backend": "onnxruntime"}, TEMPLATES)
    assert first != fingerprint(base, OPTIONS, reranker_config.TEMPLATES)


def test_each_model_hashes_only_its_own_templates() -> None:
    """A reranker or CLIP template must not make an up-to-date embedder stale (and vice
    versa)."""
    embedder = set(triton_config.TEMPLATES)
    reranker = set(reranker_config.TEMPLATES)
    clip = set(clip_config.TEMPLATES)
    assert not embedder & reranker and not embedder & clip and not reranker & clip
    template_dir = Path(triton_config.__file__).parent / "triton"
    assert embedder | reranker | clip == {p.name for p in template_dir.glob("*.py")}
    assert templates_digest(sorted(embedder)) == templates_digest(triton_config.TEMPLATES)
    assert len({templates_digest(embedder), templates_digest(reranker),
                templates_digest(clip)}) == 3


def test_empty_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        source_digest(tmp_path)
