"""Ingest events in the store: asynchronous adds and LLM extractions waiting to (re)run.

A request is written here, raw, before it is acknowledged with 202, so nothing is lost when the
process dies or the LLM fails; the worker claims due events one at a time with one atomic
update, and a restart puts the events left RUNNING back in the queue.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from gateway.store.sqlite import Store

Status = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED"]
_FIELDS = "id, user_id, status, request, result, error, attempts, next_attempt, created_at, " \
          "updated_at"


@dataclass(frozen=True, slots=True)
class IngestEvent:
    id: str
    user_id: str  # internal id of the first item's user: the tenant check reads it
    status: Status
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    next_attempt: str | None
    created_at: str
    updated_at: str


def _event(row: sqlite3.Row) -> IngestEvent:
    return IngestEvent(row["id"], row["user_id"], row["status"], json.loads(row["request"]),
                       json.loads(row["result"]) if row["result"] else None, row["error"],
                       row["attempts"], row["next_attempt"], row["created_at"],
                       row["updated_at"])


class EventStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, event_id: str, user_id: str, request: dict[str, Any], now: str, *,
                     next_attempt: str | None = None, attempts: int = 0,
                     error: str | None = None) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO ingest_events ({_FIELDS}) VALUES (?, ?, 'PENDING', ?, NULL, ?, ?, "
                "?, ?, ?)",
                (event_id, user_id, json.dumps(request), error, attempts, next_attempt or now,
                 now, now))

        await self.store.run(self.store.transaction, work)

    async def get(self, event_id: str) -> IngestEvent | None:
        def work() -> IngestEvent | None:
            row = self.store.conn.execute(
                f"SELECT {_FIELDS} FROM ingest_events WHERE id = ?", (event_id,)).fetchone()
            return None if row is None else _event(row)

        return await self.store.run(work)

    async def claim_due(self, now: str) -> IngestEvent | None:
        """The most overdue PENDING event, now RUNNING (one atomic update)."""

        def work(conn: sqlite3.Connection) -> IngestEvent | None:
            row = conn.execute(
                f"UPDATE ingest_events SET status = 'RUNNING', updated_at = ? WHERE id = ("
                "SELECT id FROM ingest_events WHERE status = 'PENDING' AND next_attempt <= ? "
                f"ORDER BY next_attempt LIMIT 1) RETURNING {_FIELDS}", (now, now)).fetchone()
            return None if row is None else _event(row)

        return await self.store.run(self.store.transaction, work)

    async def next_due(self) -> str | None:
        def work() -> str | None:
            row = self.store.conn.execute(
                "SELECT min(next_attempt) FROM ingest_events WHERE status = 'PENDING'").fetchone()
            return row[0]

        return await self.store.run(work)

    async def save(self, event_id: str, status: Status, now: str, *,
                   result: dict[str, Any] | None = None, error: str | None = None,
                   attempts: int | None = None, next_attempt: str | None = None) -> None:
        """New status (and progress, error, attempt count, next try) of an event."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE ingest_events SET status = ?, result = coalesce(?, result), error = ?, "
                "attempts = coalesce(?, attempts), next_attempt = ?, updated_at = ? WHERE id = ?",
                (status, json.dumps(result) if result is not None else None, error, attempts,
                 next_attempt, now, event_id))

        await self.store.run(self.store.transaction, work)

    async def recover(self, now: str) -> int:
        """Put events a dead process left RUNNING back in the queue; returns how many."""

        def work(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE ingest_events SET status = 'PENDING', next_attempt = ?, updated_at = ? "
                "WHERE status = 'RUNNING'", (now, now)).rowcount

        return await self.store.run(self.store.transaction, work)
