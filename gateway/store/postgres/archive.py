"""The archive in PostgreSQL: fold sources into a summary, read what the compress job and
``include_archived`` searches need, delete what expired (as the SQLite backend's
``archive``; archiving moves the lexical document by a trigger)."""

from __future__ import annotations

import numpy as np

from gateway.domain.model import Memory, SearchFilters, StoredMemory
from gateway.store.postgres.lexical import Lexicon
from gateway.store.postgres.memories import delete_rows, insert_rows
from gateway.store.postgres.rows import (
    COLUMNS,
    Conn,
    blob_vector,
    fetch_all,
    filter_conditions,
    record,
    row_to_memory,
    rowcount,
)
from gateway.store.types import Fold, StaleWrite


async def fold(conn: Conn, lexicon: Lexicon, folds: list[Fold], at: str) -> None:
    """Write every fold inside the caller's transaction, or raise ``StaleWrite``."""
    for plan in folds:
        summary = plan.summary.memory
        shadows = None if plan.shadow is None else [plan.shadow]
        await insert_rows(conn, lexicon, [plan.summary], shadows, plan.payload)
        for source in plan.sources:
            updated_at = max(at, source.updated_at)
            if await rowcount(
                conn, "UPDATE memories SET archived_at = %s, summary_id = %s, updated_at = %s "
                "WHERE id = %s AND updated_at = %s AND archived_at IS NULL",
                (at, summary.id, updated_at, source.id, source.updated_at)) != 1:
                raise StaleWrite(source.id)
            await record(conn, source, "UPDATE", source.text, source.text,
                         {"reason": "compress", "archived_into": summary.id}, updated_at)


async def compressible(conn: Conn, user_id: str, max_priority: int, live_at: str,
                       after: str, limit: int) -> list[StoredMemory]:
    """See ``Store.compressible``."""
    rows = await fetch_all(
        conn, f"SELECT {COLUMNS}, embedding FROM memories WHERE user_id = %s "
        "AND priority <= %s AND sources IS NULL "
        "AND (expires_at IS NULL OR expires_at > %s) AND id > %s ORDER BY id LIMIT %s",
        (user_id, max_priority, live_at, after, None if limit < 0 else limit))
    return [StoredMemory(row_to_memory(r), blob_vector(r["embedding"])) for r in rows]


async def archived_vectors(conn: Conn, user_id: str, filters: SearchFilters
                           ) -> list[tuple[str, str, np.ndarray]]:
    """(id, model label, vector) of the user's archived memories passing ``filters``."""
    where, args = filter_conditions(user_id, filters)
    rows = await fetch_all(conn, "SELECT m.id, m.embedding_model, m.embedding FROM memories m "
                           f"WHERE m.archived_at IS NOT NULL AND {' AND '.join(where)}", args)
    return [(r["id"], r["embedding_model"], blob_vector(r["embedding"])) for r in rows]


async def delete_expired(conn: Conn, user_id: str, at: str
                         ) -> tuple[list[Memory], list[StoredMemory]]:
    """Delete the user's memories expired at ``at`` (archived ones too), with history."""
    rows = await fetch_all(
        conn, f"SELECT {COLUMNS} FROM memories WHERE user_id = %s AND expires_at IS NOT NULL "
        "AND expires_at <= %s ORDER BY id FOR UPDATE", (user_id, at))
    expired = [row_to_memory(row) for row in rows]
    return expired, await delete_rows(conn, expired, at, {"reason": "expired"})
