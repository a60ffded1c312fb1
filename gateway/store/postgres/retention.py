"""Retention in PostgreSQL: drop finished jobs, finished ingest events and the history of
memories deleted long enough ago, a bounded batch per transaction (as SQLite's)."""

from __future__ import annotations

from gateway.store.postgres.rows import Conn, fetch_all, rowcount

BATCH = 500


async def jobs(conn: Conn, before: str) -> int:
    return await rowcount(
        conn, "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status IN "
        "('done', 'failed') AND finished_at < %s LIMIT %s)", (before, BATCH))


async def events(conn: Conn, before: str) -> int:
    return await rowcount(
        conn, "DELETE FROM ingest_events WHERE id IN (SELECT id FROM ingest_events "
        "WHERE status IN ('SUCCEEDED', 'FAILED') AND updated_at < %s LIMIT %s)",
        (before, BATCH))


async def history(conn: Conn, before: str) -> int:
    """History rows of up to ``BATCH`` memories deleted before ``before``."""
    gone = [r["memory_id"] for r in await fetch_all(
        conn, "SELECT DISTINCT memory_id FROM history AS h WHERE event = 'DELETE' AND at < %s "
        "AND NOT EXISTS (SELECT 1 FROM memories AS m WHERE m.id = h.memory_id) LIMIT %s",
        (before, BATCH))]
    if not gone:
        return 0
    return await rowcount(conn, "DELETE FROM history WHERE memory_id = ANY(%s)", (gone,))
