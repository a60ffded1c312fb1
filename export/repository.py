"""Numbered model versions in a Triton repository, published atomically.

A version is built in a hidden staging folder inside the model folder (same filesystem) and
appears under its number with one ``os.rename``, so a polling Triton never sees half a version.
Triton ignores non-numeric folders, and a failed export leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

MANIFEST_FILE = "export_manifest.json"
STAGING_PREFIX = ".staging-"


def versions(model_dir: Path) -> list[int]:
    """Existing version numbers, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def latest_manifest(model_dir: Path) -> tuple[int, dict] | None:
    """(version, manifest) of the newest version, or None if there is none or it is unreadable."""
    existing = versions(model_dir)
    if not existing:
        return None
    latest = existing[-1]
    try:
        manifest = json.loads((model_dir / str(latest) / MANIFEST_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return latest, manifest


def next_version(model_dirs: Iterable[Path]) -> int:
    """One past the newest version in any of ``model_dirs`` (parts of one export share it)."""
    return max((v for d in model_dirs for v in versions(d)), default=0) + 1


def write_manifest(stage: Path, manifest: dict) -> Path:
    path = stage / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


@contextmanager
def staging(model_dir: Path) -> Iterator[Path]:
    """A fresh folder inside ``model_dir``; removed on exit unless it was published."""
    model_dir.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model_dir))
    try:
        yield path
    finally:
        if path.exists():
            shutil.rmtree(path)


def publish(staged: Path, model_dir: Path, version: int) -> Path:
    """Rename ``staged`` to ``model_dir/<version>``; refuses to overwrite an existing version."""
    target = model_dir / str(version)
    if target.exists():
        raise FileExistsError(f"{target} already exists (a concurrent export?)")
    # mkdtemp makes it 0700; tritonserver may run as another user and must read the folder.
    staged.chmod(0o755)  # noqa: S103
    staged.rename(target)
    return target


def write_files(root: Path, files: dict[str, bytes]) -> list[Path]:
    """Write ``{relative path: bytes}`` under ``root``, replacing each file atomically."""
    written = []
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_bytes() == data:
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        written.append(path)
    return written
