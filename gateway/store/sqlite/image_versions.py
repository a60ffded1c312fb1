"""A CLIP migration in SQLite: every stored picture re-embedded into ``image_shadow_vectors``.

The CLIP active version and the migration target live in ``model_state`` like the embedder's
(model ``clip``); the target's image vectors wait beside the active ones until every picture
has one, then one transaction moves them into ``memory_images`` and makes the target active,
so searches read either the old space or the new one, never a mix. The cursor in
``model_state`` lets a restarted gateway resume.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from gateway.store.sqlite.rows import vector_blob
from gateway.store.sqlite.versions import (
    advance_cursor,
    claim_target,
    drop_target,
    make_target_active,
)
from gateway.store.types import PendingImage

_PENDING = "SELECT i.memory_id, i.data FROM memory_images i WHERE {} ORDER BY i.memory_id LIMIT ?"


def begin(conn: sqlite3.Connection, model: str, target: str, at: str) -> bool:
    """Only when no CLIP migration runs: False then (nothing changed)."""
    return claim_target(conn, model, target, at, "image_shadow_vectors")


def pending(conn: sqlite3.Connection, after_id: str, limit: int) -> list[PendingImage]:
    """Pictures after the cursor; past the end, any still without a target vector (one
    added during the migration, embedded with the active version)."""
    rows = conn.execute(_PENDING.format("i.memory_id > ?"), (after_id, limit)).fetchall()
    if not rows:
        rows = conn.execute(_PENDING.format(
            "NOT EXISTS (SELECT 1 FROM image_shadow_vectors s WHERE s.memory_id = i.memory_id)"),
            (limit,)).fetchall()
    return [PendingImage(row[0], bytes(row[1])) for row in rows]


def put_batch(conn: sqlite3.Connection, model: str, label: str, ids: list[str],
              vectors: np.ndarray) -> int:
    """Target vectors for the pictures still stored (a deleted one is skipped); moves the
    cursor; returns how many were written."""
    written = 0
    for memory_id, vector in zip(ids, vectors, strict=True):
        written += conn.execute(
            "INSERT OR REPLACE INTO image_shadow_vectors (memory_id, model, embedding) "
            "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM memory_images WHERE memory_id = ?)",
            (memory_id, label, vector_blob(vector), memory_id)).rowcount
    if ids:
        advance_cursor(conn, model, ids[-1])
    return written


def progress(conn: sqlite3.Connection) -> tuple[int, int]:
    done = conn.execute("SELECT count(*) FROM image_shadow_vectors").fetchone()[0]
    total = conn.execute("SELECT count(*) FROM memory_images").fetchone()[0]
    return int(done), int(total)


def switch(conn: sqlite3.Connection, model: str, target: str, label: str) -> bool:
    """Make the target active with its vectors; False (nothing changed) while a picture
    lacks one."""
    missing = conn.execute(
        "SELECT count(*) FROM memory_images i WHERE NOT EXISTS (SELECT 1 FROM "
        "image_shadow_vectors s WHERE s.memory_id = i.memory_id AND s.model = ?)",
        (label,)).fetchone()[0]
    if missing:
        return False
    make_target_active(conn, model, target)
    conn.execute("UPDATE memory_images SET model = ?, embedding = (SELECT embedding FROM "
                 "image_shadow_vectors s WHERE s.memory_id = memory_images.memory_id)",
                 (label,))
    conn.execute("DELETE FROM image_shadow_vectors")
    return True


def abandon(conn: sqlite3.Connection, model: str) -> None:
    drop_target(conn, model, "image_shadow_vectors")
