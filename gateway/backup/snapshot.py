"""Consistent copies of the SQLite store while the gateway serves, and putting one back.

``create`` uses SQLite's online backup API: it copies the database as of one read transaction,
so writes committed while it runs are either all in the copy or all out of it, and the gateway
keeps serving (WAL readers never block writers). A backup is a directory: ``memories.sqlite3``,
the API keys' ``keys.sqlite3`` (stored hashed; ``--no-keys`` leaves them out) and
``manifest.json`` with checksums, so ``restore`` refuses a damaged or partial copy.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.settings import Settings
from gateway.store.in_use import sole_use
from gateway.store.sqlite.files import (
    SCHEMA_VERSION,
    copy_online,
    database_facts,
    replace_database,
)

MANIFEST = "manifest.json"
MEMORIES_FILE = "memories.sqlite3"
KEYS_FILE = "keys.sqlite3"


class BackupError(RuntimeError):
    """A backup or export that cannot be made or used; the message says why."""


def refuse_postgres(settings: Settings, verb: str) -> None:
    """Backups, restores, exports and imports copy or lock the SQLite files; a PostgreSQL
    store (``MEMORY_STORE_URL``) is backed up by PostgreSQL's own tools instead."""
    if settings.postgres_url is not None:
        raise BackupError(
            f"the store is PostgreSQL (MEMORY_STORE_URL): {verb} works on the SQLite files "
            "only; use pg_dump / pg_restore (docs/operations.md, \"PostgreSQL\")")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def create_backup(settings: Settings, path: Path, *, keys: bool = True) -> dict[str, Any]:
    """Copy the store (and the keys) into the new directory ``path``; returns the manifest."""
    refuse_postgres(settings, "backup create")
    if not settings.db_path.exists():
        raise BackupError(f"no store at {settings.db_path}")
    if path.exists() and any(path.iterdir()):
        raise BackupError(f"{path} exists and is not empty")
    path.mkdir(parents=True, exist_ok=True)
    files = {MEMORIES_FILE: settings.db_path}
    if keys and settings.keys_path.exists():
        files[KEYS_FILE] = settings.keys_path
    for name, source in files.items():
        verdict = copy_online(source, path / name)
        if verdict != "ok":
            raise BackupError(f"copy of {source} failed its integrity check: {verdict}")
    schema, count = database_facts(path / MEMORIES_FILE)
    manifest = {
        "created_at": datetime.now(UTC).isoformat(),
        "schema_version": schema,
        "memories": count,
        "files": {name: _sha256(path / name) for name in files},
    }
    (path / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _checked_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{path} is not a backup ({MANIFEST}: {exc})") from exc
    for name, digest in manifest["files"].items():
        if not (path / name).exists() or _sha256(path / name) != digest:
            raise BackupError(f"{path / name} is missing or damaged (checksum differs)")
    if manifest["schema_version"] > SCHEMA_VERSION:
        raise BackupError(f"backup schema {manifest['schema_version']} is newer than this "
                          f"gateway knows ({SCHEMA_VERSION})")
    return manifest


def restore_backup(settings: Settings, path: Path, *, force: bool = False) -> dict[str, Any]:
    """Put a backup in place of the store (and keys). Refused while a gateway runs on it
    (``StoreBusy``)."""
    refuse_postgres(settings, "backup restore")
    manifest = _checked_manifest(path)
    if settings.db_path.exists() and not force:
        raise BackupError(f"{settings.db_path} exists: pass --force to replace it")
    alone = sole_use(settings.db_path)
    try:
        replace_database(path / MEMORIES_FILE, settings.db_path)
        if KEYS_FILE in manifest["files"]:
            replace_database(path / KEYS_FILE, settings.keys_path)
    finally:
        alone.release()
    return manifest
