"""Fixtures for the exporter tests: one real export per session into a temporary repository.

Exporting MiniLM takes ~10 s on two cores, so tests that only read a version share this one;
tests that need another version copy the repository first.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from export.cli import default_source, main


@pytest.fixture(scope="session")
def source_dir() -> Path:
    return default_source()


@pytest.fixture(scope="session")
def exported_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding ``embedder/1`` (fp32, python backend), exported by the real CLI."""
    repo = tmp_path_factory.mktemp("exported") / "model_repository"
    assert main(["embedder", "--repository", str(repo)]) == 0
    return repo


@pytest.fixture(scope="session")
def ensemble_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository in the GPU layout (``--backend onnxruntime --tensorrt``), version 1."""
    repo = tmp_path_factory.mktemp("ensemble") / "model_repository"
    argv = ["embedder", "--repository", str(repo), "--backend", "onnxruntime", "--tensorrt"]
    assert main(argv) == 0
    return repo


@pytest.fixture(scope="session")
def version_dir(exported_repo: Path) -> Path:
    return exported_repo / "embedder" / "1"


@pytest.fixture
def repo_copy(exported_repo: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the exported repository that a test may add versions to."""
    copy = tmp_path / "model_repository"
    shutil.copytree(exported_repo, copy)
    yield copy
