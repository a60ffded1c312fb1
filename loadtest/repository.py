"""Scratch copies of the model repository, so benchmarks and tests can add versions freely."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.settings import ROOT
from gateway.versions.control import repository_versions

MODEL_REPOSITORY = ROOT / "model_repository"


def copy_latest_as_v1(root: Path, model: str = "embedder",
                      source: Path = MODEL_REPOSITORY) -> Path:
    """``root/repository`` holding ``model``'s config and its newest version as version 1."""
    repo = root / "repository"
    latest = repository_versions(source, model)
    if not latest:
        raise FileNotFoundError(f"no {model} version in {source}: run `make export`")
    shutil.copytree(source / model, repo / model,
                    ignore=lambda _, names: [n for n in names if n.isdigit()
                                             or n == "__pycache__"])
    shutil.copytree(source / model / latest[-1], repo / model / "1",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return repo
