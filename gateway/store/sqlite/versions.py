"""Model-version state in SQLite: the active version, and an embedder migration.

A migration re-embeds every memory with the target version into ``shadow_vectors`` while the
active version keeps serving; writes during it store both vectors in one transaction. The
switch copies the shadow vectors over in one transaction, so a crash leaves either the old
space or the new one, never a mix; the cursor lets a restarted gateway resume where it was.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from gateway.store.sqlite.rows import blob_vector, vector_blob
from gateway.store.types import ModelState, PendingMemory


def state(conn: sqlite3.Connection, model: str) -> ModelState | None:
    row = conn.execute("SELECT model, active, target, cursor, started_at FROM model_state "
                       "WHERE model = ?", (model,)).fetchone()
    return None if row is None else ModelState(*row)


def set_active(conn: sqlite3.Connection, model: str, version: str) -> None:
    conn.execute("INSERT INTO model_state (model, active) VALUES (?, ?) "
                 "ON CONFLICT (model) DO UPDATE SET active = excluded.active", (model, version))


def adopt(conn: sqlite3.Connection, models: dict[str, str]) -> dict[str, str]:
    """Take these active versions where none is recorded; returns every recorded one."""
    for model, active in models.items():
        conn.execute("INSERT OR IGNORE INTO model_state (model, active) VALUES (?, ?)",
                     (model, active))
    return {r[0]: r[1] for r in conn.execute("SELECT model, active FROM model_state")}


# A migration's life in ``model_state``, shared by the embedder's (``shadow_vectors``) and
# CLIP's (``image_versions``: ``image_shadow_vectors``); ``shadow`` is one of those tables.
def claim_target(conn: sqlite3.Connection, model: str, target: str, at: str,
                 shadow: str) -> bool:
    """Only when no migration of ``model`` runs (one begun elsewhere wins): False then."""
    if conn.execute("UPDATE model_state SET target = ?, cursor = '', started_at = ? "
                    "WHERE model = ? AND target IS NULL", (target, at, model)).rowcount != 1:
        return False
    conn.execute(f"DELETE FROM {shadow}")
    return True


def advance_cursor(conn: sqlite3.Connection, model: str, last_id: str) -> None:
    conn.execute("UPDATE model_state SET cursor = max(cursor, ?) WHERE model = ?",
                 (last_id, model))


def make_target_active(conn: sqlite3.Connection, model: str, target: str) -> None:
    conn.execute("UPDATE model_state SET active = ?, target = NULL, cursor = '', "
                 "started_at = NULL WHERE model = ?", (target, model))


def drop_target(conn: sqlite3.Connection, model: str, shadow: str) -> None:
    conn.execute(f"DELETE FROM {shadow}")
    conn.execute("UPDATE model_state SET target = NULL, cursor = '', started_at = NULL "
                 "WHERE model = ?", (model,))


def begin(conn: sqlite3.Connection, model: str, target: str, at: str) -> bool:
    return claim_target(conn, model, target, at, "shadow_vectors")


# The text as writes embed it: after its speaker (conversation.attributed).
_PENDING = ("SELECT id, user_id, coalesce(speaker || ': ', '') || text, updated_at, "
            "archived_at IS NOT NULL FROM memories m WHERE {} ORDER BY id LIMIT ?")


def pending(conn: sqlite3.Connection, after_id: str, limit: int) -> list[PendingMemory]:
    """After the cursor; past the end, any memory still without a target vector (one
    written or changed before its gateway followed the migration)."""
    rows = conn.execute(_PENDING.format("id > ?"), (after_id, limit)).fetchall()
    if not rows:
        rows = conn.execute(_PENDING.format(
            "NOT EXISTS (SELECT 1 FROM shadow_vectors s WHERE s.memory_id = m.id)"),
            (limit,)).fetchall()
    return [PendingMemory(row[0], row[1], row[2], row[3], bool(row[4])) for row in rows]


def put_batch(conn: sqlite3.Connection, model: str, label: str, batch: list[PendingMemory],
              vectors: np.ndarray) -> list[PendingMemory]:
    """Shadow vectors for rows unchanged since read (a row updated meanwhile got its
    target vector from the update itself); moves the cursor; returns the rows written."""
    written = []
    for item, vector in zip(batch, vectors, strict=True):
        cursor = conn.execute(
            "INSERT OR REPLACE INTO shadow_vectors (memory_id, model, embedding) "
            "SELECT ?, ?, ? WHERE EXISTS "
            "(SELECT 1 FROM memories WHERE id = ? AND updated_at = ?)",
            (item.id, label, vector_blob(vector), item.id, item.updated_at),
        )
        if cursor.rowcount == 1:
            written.append(item)
    if batch:
        advance_cursor(conn, model, batch[-1].id)
    return written


def shadow_vectors(conn: sqlite3.Connection) -> list[tuple[str, str, np.ndarray]]:
    rows = conn.execute(
        "SELECT m.user_id, s.memory_id, s.embedding FROM shadow_vectors s "
        "JOIN memories m ON m.id = s.memory_id WHERE m.archived_at IS NULL").fetchall()
    return [(row[0], row[1], blob_vector(row[2])) for row in rows]


def progress(conn: sqlite3.Connection) -> tuple[int, int]:
    done = conn.execute("SELECT count(*) FROM shadow_vectors").fetchone()[0]
    total = conn.execute("SELECT count(*) FROM memories").fetchone()[0]
    return int(done), int(total)


def switch(conn: sqlite3.Connection, model: str, target: str, label: str) -> bool:
    """Make the target active; False (nothing changed) if a row lacks a target vector."""
    missing = conn.execute(
        "SELECT count(*) FROM memories m WHERE NOT EXISTS "
        "(SELECT 1 FROM shadow_vectors s WHERE s.memory_id = m.id AND s.model = ?)",
        (label,)).fetchone()[0]
    if missing:
        return False
    # The state first: the store's guard (``space_guard``) checks each row against it.
    make_target_active(conn, model, target)
    conn.execute("UPDATE memories SET embedding_model = ?, embedding = "
                 "(SELECT embedding FROM shadow_vectors s WHERE s.memory_id = memories.id)",
                 (label,))
    conn.execute("DELETE FROM shadow_vectors")
    return True


def abandon(conn: sqlite3.Connection, model: str) -> None:
    drop_target(conn, model, "shadow_vectors")
