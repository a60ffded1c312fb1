"""Decide whether an export is needed, with hashlib only (the no-op path must not load torch).

The fingerprint covers everything that shapes a version directory: the source model files
(relative name + content), the export options, the Triton model code templates that model copies
(only its own: adding a reranker template must not make an up-to-date embedder stale) and
``EXPORTER_VERSION``. Bump ``EXPORTER_VERSION`` when the export *logic* changes in a way the
hashed files do not show (e.g. new optimum flags).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

EXPORTER_VERSION = "1"
TEMPLATE_DIR = Path(__file__).resolve().parent / "triton"
_CHUNK = 1 << 20


def _hash_files(root: Path, files: Iterable[Path], digest: hashlib._Hash) -> int:
    files = sorted(files)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(str(path.stat().st_size).encode("ascii") + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return len(files)


def _hash_tree(root: Path, digest: hashlib._Hash) -> int:
    files = [
        p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.relative_to(root).parts
    ]
    return _hash_files(root, files, digest)


def source_digest(source: Path) -> str:
    """sha256 over every file of the source model folder (names and contents)."""
    digest = hashlib.sha256()
    if _hash_tree(source, digest) == 0:
        raise FileNotFoundError(f"no model files under {source}")
    return digest.hexdigest()


def templates_digest(names: Iterable[str]) -> str:
    """sha256 over the named Triton model code files (in ``export/triton/``) a version copies."""
    digest = hashlib.sha256()
    _hash_files(TEMPLATE_DIR, [TEMPLATE_DIR / name for name in names], digest)
    return digest.hexdigest()


def fingerprint(source_sha256: str, options: Mapping[str, object], templates: Iterable[str]) -> str:
    """The identity of an export: same fingerprint, same version directory contents."""
    payload = {
        "exporter_version": EXPORTER_VERSION,
        "source_sha256": source_sha256,
        "templates_sha256": templates_digest(templates),
        "options": dict(sorted(options.items())),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
