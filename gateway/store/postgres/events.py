"""Ingest events in PostgreSQL: asynchronous adds and LLM extractions waiting to (re)run.

As the SQLite backend's ``events``; a claim skips rows another replica has locked, so two
workers never take one event.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.store.postgres.rows import Conn, fetch_one, rowcount
from gateway.store.types import EventStatus, IngestEvent

_FIELDS = ("id, user_id, status, request, result, error, attempts, next_attempt, created_at, "
           "updated_at")


def _event(row: dict[str, Any] | None) -> IngestEvent | None:
    if row is None:
        return None
    return IngestEvent(row["id"], row["user_id"], row["status"], json.loads(row["request"]),
                       json.loads(row["result"]) if row["result"] else None, row["error"],
                       row["attempts"], row["next_attempt"], row["created_at"],
                       row["updated_at"])


async def create(conn: Conn, event_id: str, user_id: str, request: dict[str, Any], now: str,
                 next_attempt: str | None, attempts: int, error: str | None) -> None:
    await conn.execute(
        f"INSERT INTO ingest_events ({_FIELDS}) VALUES (%s, %s, 'PENDING', %s, NULL, %s, %s, "
        "%s, %s, %s)",
        (event_id, user_id, json.dumps(request), error, attempts, next_attempt or now, now, now))


async def get(conn: Conn, event_id: str) -> IngestEvent | None:
    return _event(await fetch_one(conn, f"SELECT {_FIELDS} FROM ingest_events WHERE id = %s",
                                  (event_id,)))


async def claim_due(conn: Conn, now: str) -> IngestEvent | None:
    """The most overdue PENDING event, now RUNNING (one atomic update)."""
    return _event(await fetch_one(
        conn, "UPDATE ingest_events SET status = 'RUNNING', updated_at = %s WHERE id = ("
        "SELECT id FROM ingest_events WHERE status = 'PENDING' AND next_attempt <= %s "
        f"ORDER BY next_attempt LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING {_FIELDS}",
        (now, now)))


async def next_due(conn: Conn) -> str | None:
    row = await fetch_one(conn, "SELECT min(next_attempt) AS due FROM ingest_events "
                                "WHERE status = 'PENDING'")
    return None if row is None else row["due"]


async def save(conn: Conn, event_id: str, status: EventStatus, now: str,
               result: dict[str, Any] | None, error: str | None, attempts: int | None,
               next_attempt: str | None) -> None:
    await conn.execute(
        "UPDATE ingest_events SET status = %s, result = coalesce(%s, result), error = %s, "
        "attempts = coalesce(%s, attempts), next_attempt = %s, updated_at = %s WHERE id = %s",
        (status, json.dumps(result) if result is not None else None, error, attempts,
         next_attempt, now, event_id))


async def recover(conn: Conn, now: str) -> int:
    """Put events a dead process left RUNNING back in the queue; returns how many."""
    return await rowcount(
        conn, "UPDATE ingest_events SET status = 'PENDING', next_attempt = %s, updated_at = %s "
        "WHERE status = 'RUNNING'", (now, now))
