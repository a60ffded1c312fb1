"""The SQLite backend's database files as files: an online copy, what a copy holds, putting one
in place, and one read snapshot of every memory row for an export.

Backups (``gateway.backup``) call these; they are the only places outside the store's own
connections that open the database, so they live with the backend.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gateway.domain.model import Memory
from gateway.store.sqlite.migrations import MIGRATIONS
from gateway.store.sqlite.private import make_private
from gateway.store.sqlite.rows import blob_vector

SCHEMA_VERSION = len(MIGRATIONS)  # the newest schema this gateway knows
# Every column of a memory row an export carries (the vector is read apart, when asked for).
EXPORT_COLUMNS = (*Memory.__dataclass_fields__, "context")


def copy_online(source: Path, target: Path) -> str:
    """One-step SQLite backup (one read snapshot) into a self-contained file at ``target``.

    Returns ``PRAGMA quick_check``'s verdict; the copy is put in place only when it is "ok"."""
    tmp = target.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    make_private(tmp)  # a backup holds every memory: 0600 like the database
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(tmp)
    try:
        src.execute("PRAGMA busy_timeout = 5000")
        src.backup(dst)  # pages=-1: the whole database in one step, from one snapshot
        dst.execute("PRAGMA journal_mode = DELETE")  # no -wal beside the copy
        # quick_check: pages, records and constraints; it needs none of the SQL functions the
        # store registers for its expression indexes and triggers (integrity_check does).
        verdict: str = dst.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        dst.close()
        src.close()
    if verdict == "ok":
        tmp.replace(target)
    else:
        tmp.unlink(missing_ok=True)
    return verdict


def database_facts(path: Path) -> tuple[int, int]:
    """(schema version, number of memories) of a database file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = conn.execute("PRAGMA user_version").fetchone()[0]
        count = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    finally:
        conn.close()
    return schema, count


def replace_database(source: Path, target: Path) -> None:
    """Copy next to ``target``, then rename over it, dropping the old WAL and shared memory."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".restoring")
    tmp.unlink(missing_ok=True)
    make_private(tmp)
    shutil.copyfile(source, tmp)  # into the 0600 file made above
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    tmp.replace(target)


@dataclass(frozen=True, slots=True)
class ExportSnapshot:
    """What one read transaction sees: the schema, the active model versions, and the rows."""

    schema_version: int
    models: dict[str, str]
    rows: Iterator[dict[str, Any]]  # every EXPORT_COLUMNS value (JSON decoded), "embedding"


@contextmanager
def export_snapshot(path: Path, user_id: str | None, *,
                    vectors: bool) -> Iterator[ExportSnapshot]:
    """Memory rows (of one user, or all) in id order from one read snapshot; each row's
    ``embedding`` is its vector (``vectors``) or None."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("BEGIN")  # one snapshot for the whole export
        schema = conn.execute("PRAGMA user_version").fetchone()[0]
        models = {r[0]: r[1] for r in conn.execute("SELECT model, active FROM model_state")}
        yield ExportSnapshot(schema, models, _rows(conn, user_id, vectors))
    finally:
        conn.close()


def _rows(conn: sqlite3.Connection, user_id: str | None,
          vectors: bool) -> Iterator[dict[str, Any]]:
    where, args = ("WHERE user_id = ?", [user_id]) if user_id else ("", [])
    columns = ", ".join(EXPORT_COLUMNS)
    for row in conn.execute(
            f"SELECT {columns}, embedding FROM memories {where} ORDER BY id", args):
        line = {name: row[name] for name in EXPORT_COLUMNS}
        line["metadata"] = json.loads(row["metadata"])
        line["sources"] = None if row["sources"] is None else json.loads(row["sources"])
        embedding: np.ndarray | None = blob_vector(row["embedding"]) if vectors else None
        line["embedding"] = embedding
        if row["modality"] == "image":
            line["image"] = _image(conn, row["id"])
        yield line


def _image(conn: sqlite3.Connection, memory_id: str) -> dict[str, Any] | None:
    """An image memory's picture (base64) and CLIP vector, as an export line carries them:
    always with the vector, which only a CLIP model could make again."""
    row = conn.execute("SELECT mime, width, height, data, model, embedding FROM memory_images "
                       "WHERE memory_id = ?", (memory_id,)).fetchone()
    if row is None:
        return None
    return {"mime": row["mime"], "width": row["width"], "height": row["height"],
            "data": base64.b64encode(row["data"]).decode("ascii"), "model": row["model"],
            "embedding": blob_vector(row["embedding"]).tolist()}
