"""The fingerprint changes exactly when a version's contents would."""

from __future__ import annotations

from pathlib import Path

import pytest

from export.fingerprint import fingerprint, source_digest

OPTIONS = {"quantize": None, "backend": "python", "tensorrt": False}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "weights.bin").write_bytes(b"\x00" * 10)
    return tmp_path


def test_stable_for_the_same_inputs(source: Path) -> None:
    assert fingerprint(source_digest(source), OPTIONS) == fingerprint(
        source_digest(source), dict(OPTIONS)
    )


def test_changes_with_content_name_and_options(source: Path) -> None:
    base = source_digest(source)
    (source / "sub" / "weights.bin").write_bytes(b"\x00" * 9 + b"\x01")
    changed_content = source_digest(source)
    (source / "sub" / "weights.bin").rename(source / "sub" / "weights2.bin")
    changed_name = source_digest(source)
    assert len({base, changed_content, changed_name}) == 3
    assert fingerprint(base, OPTIONS) != fingerprint(base, {**OPTIONS, "quantize": "int8"})
    assert fingerprint(base, OPTIONS) != fingerprint(base, {**OPTIONS, "backend": "onnxruntime"})


def test_empty_source_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        source_digest(tmp_path)
