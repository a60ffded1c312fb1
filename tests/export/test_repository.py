"""Version numbering and atomic publication."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export import repository


def test_versions_ignore_staging_and_non_numeric(tmp_path: Path) -> None:
    for name in ("1", "3", "10", ".staging-x", "warmup"):
        (tmp_path / name).mkdir()
    (tmp_path / "7").write_text("a file, not a version")
    assert repository.versions(tmp_path) == [1, 3, 10]
    assert repository.versions(tmp_path / "missing") == []


def test_latest_manifest_reads_the_newest_version(tmp_path: Path) -> None:
    for version in (1, 2):
        (tmp_path / str(version)).mkdir()
        (tmp_path / str(version) / repository.MANIFEST_FILE).write_text(
            json.dumps({"fingerprint": f"f{version}"})
        )
    assert repository.latest_manifest(tmp_path) == (2, {"fingerprint": "f2"})
    (tmp_path / "3").mkdir()  # a version without a manifest is not "up to date" with anything
    assert repository.latest_manifest(tmp_path) is None


def test_staging_is_removed_when_the_build_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), repository.staging(tmp_path) as stage:
        (stage / "model.onnx").write_bytes(b"half written")
        raise RuntimeError("export crashed")
    assert list(tmp_path.iterdir()) == []


def test_publish_renames_and_refuses_to_overwrite(tmp_path: Path) -> None:
    with repository.staging(tmp_path) as stage:
        (stage / "model.onnx").write_bytes(b"graph")
        target = repository.publish(stage, tmp_path, 1)
    assert (target / "model.onnx").read_bytes() == b"graph"
    assert [p.name for p in tmp_path.iterdir()] == ["1"]
    with pytest.raises(FileExistsError), repository.staging(tmp_path) as stage:
        repository.publish(stage, tmp_path, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["1"]
