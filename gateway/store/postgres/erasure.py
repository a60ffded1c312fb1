"""Right to erasure in PostgreSQL: a memory's or a user's rows, history and ingest events
removed in one transaction.

Unlike SQLite (``secure_delete`` and a WAL checkpoint), PostgreSQL leaves a deleted row's old
version in its table file until VACUUM reclaims the space, and in the WAL and any base
backups until they are recycled: nothing a client of the database can scrub. Autovacuum
reclaims the dead tuples once no older snapshot needs them; the operator owns WAL archives and
backups (docs/operations.md, "PostgreSQL").
"""

from __future__ import annotations

import json

from gateway.store.postgres import feed, memories
from gateway.store.postgres.rows import Conn, fetch_all, fetch_one, rowcount
from gateway.store.types import Erased


async def _events_naming(conn: Conn, needle: str) -> int:
    return await rowcount(
        conn, "DELETE FROM ingest_events WHERE strpos(request, %s) > 0 "
        "OR strpos(coalesce(result, ''), %s) > 0", (needle, needle))


async def erase_one(conn: Conn, memory_id: str, at: str) -> Erased | None:
    """See ``Store.erase``; runs inside the caller's transaction."""
    memory = await memories.get(conn, memory_id, lock=True)
    if memory is not None:
        owner = memory.user_id
        restored = await memories.delete_rows(conn, [memory], at, {})
    else:
        row = await fetch_one(conn, "SELECT user_id FROM history WHERE memory_id = %s LIMIT 1",
                              (memory_id,))
        if row is None:
            return None
        owner, restored = row["user_id"], []
    history = await rowcount(conn, "DELETE FROM history WHERE memory_id = %s", (memory_id,))
    if memory is not None:
        history -= 1  # the DELETE event delete_rows just wrote was never kept
    ingest = await _events_naming(conn, memory_id)
    return Erased(owner, memory, restored, history, ingest)


async def erase_user(conn: Conn, user_id: str) -> list[str]:
    """See ``Store.erase_user``; runs inside the caller's transaction."""
    rows = await fetch_all(conn, "DELETE FROM memories WHERE user_id = %s RETURNING id",
                           (user_id,))
    await feed.note_user(conn, user_id)
    await conn.execute("DELETE FROM history WHERE user_id = %s", (user_id,))
    await conn.execute("DELETE FROM ingest_events WHERE user_id = %s", (user_id,))
    await _events_naming(conn, json.dumps(user_id))
    return [r["id"] for r in rows]
