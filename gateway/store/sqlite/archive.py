"""The archive in SQLite: fold sources into a summary, read what the compress job and
``include_archived`` searches need, delete what expired.

A fold inserts the summary (an ADD event listing its sources) and archives every source (an
UPDATE event naming the summary): all of it commits or nothing does, so a crash leaves each
group either folded or untouched. A source changed or archived since the job read it makes
the whole plan stale (``StaleWrite``); the job reads again. Deletes keep the archive
consistent through ``memories.delete_rows`` (a deleted summary restores its sources).
"""

from __future__ import annotations

import sqlite3

import numpy as np

from gateway.domain.model import Memory, SearchFilters, StoredMemory
from gateway.store.sqlite.memories import delete_rows, insert_rows
from gateway.store.sqlite.rows import (
    COLUMNS,
    blob_vector,
    filter_conditions,
    record,
    row_to_memory,
)
from gateway.store.types import Fold, StaleWrite


def fold(conn: sqlite3.Connection, folds: list[Fold], at: str) -> None:
    """Write every fold inside the caller's transaction, or raise ``StaleWrite``."""
    for plan in folds:
        summary = plan.summary.memory
        shadows = None if plan.shadow is None else [plan.shadow]
        insert_rows(conn, [plan.summary], shadows, plan.payload)
        for source in plan.sources:
            updated_at = max(at, source.updated_at)
            if conn.execute(
                "UPDATE memories SET archived_at = ?, summary_id = ?, updated_at = ? "
                "WHERE id = ? AND updated_at = ? AND archived_at IS NULL",
                (at, summary.id, updated_at, source.id, source.updated_at),
            ).rowcount != 1:
                raise StaleWrite(source.id)
            record(conn, source, "UPDATE", source.text, source.text,
                   {"reason": "compress", "archived_into": summary.id}, updated_at)


def compressible(conn: sqlite3.Connection, user_id: str, max_priority: int, live_at: str,
                 after: str, limit: int) -> list[StoredMemory]:
    """See ``Store.compressible``."""
    rows = conn.execute(
        f"SELECT {COLUMNS}, embedding FROM memories WHERE user_id = ? "
        "AND priority <= ? AND sources IS NULL "
        "AND (expires_at IS NULL OR expires_at > ?) AND id > ? ORDER BY id LIMIT ?",
        (user_id, max_priority, live_at, after, limit)).fetchall()
    return [StoredMemory(row_to_memory(r), blob_vector(r["embedding"])) for r in rows]


def archived_vectors(conn: sqlite3.Connection, user_id: str, filters: SearchFilters
                     ) -> list[tuple[str, str, np.ndarray]]:
    """(id, model label, vector) of the user's archived memories passing ``filters``."""
    where, args = filter_conditions(user_id, filters)
    rows = conn.execute(f"SELECT m.id, m.embedding_model, m.embedding FROM memories m "
                        f"WHERE m.archived_at IS NOT NULL AND {' AND '.join(where)}", args)
    return [(row[0], row[1], blob_vector(row[2])) for row in rows]


def delete_expired(conn: sqlite3.Connection, user_id: str, at: str
                   ) -> tuple[list[Memory], list[StoredMemory]]:
    """Delete the user's memories expired at ``at`` (archived ones too), with history."""
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM memories WHERE user_id = ? AND expires_at IS NOT NULL "
        "AND expires_at <= ? ORDER BY id", (user_id, at)).fetchall()
    expired = [row_to_memory(row) for row in rows]
    return expired, delete_rows(conn, expired, at, {"reason": "expired"})
