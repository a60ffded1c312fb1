"""Ingest events in SQLite: asynchronous adds and LLM extractions waiting to (re)run.

A request is written here, raw, before it is acknowledged with 202, so nothing is lost when the
process dies or the LLM fails; the worker claims due events one at a time with one atomic
update, and a restart puts the events left RUNNING back in the queue.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from gateway.store.types import EventStatus, IngestEvent

_FIELDS = ("id, user_id, status, request, result, error, attempts, next_attempt, created_at, "
           "updated_at")


def _event(row: sqlite3.Row | None) -> IngestEvent | None:
    if row is None:
        return None
    return IngestEvent(row["id"], row["user_id"], row["status"], json.loads(row["request"]),
                       json.loads(row["result"]) if row["result"] else None, row["error"],
                       row["attempts"], row["next_attempt"], row["created_at"],
                       row["updated_at"])


def create(conn: sqlite3.Connection, event_id: str, user_id: str, request: dict[str, Any],
           now: str, next_attempt: str | None, attempts: int, error: str | None) -> None:
    conn.execute(
        f"INSERT INTO ingest_events ({_FIELDS}) VALUES (?, ?, 'PENDING', ?, NULL, ?, ?, "
        "?, ?, ?)",
        (event_id, user_id, json.dumps(request), error, attempts, next_attempt or now, now, now))


def get(conn: sqlite3.Connection, event_id: str) -> IngestEvent | None:
    return _event(conn.execute(
        f"SELECT {_FIELDS} FROM ingest_events WHERE id = ?", (event_id,)).fetchone())


def claim_due(conn: sqlite3.Connection, now: str) -> IngestEvent | None:
    """The most overdue PENDING event, now RUNNING (one atomic update)."""
    return _event(conn.execute(
        f"UPDATE ingest_events SET status = 'RUNNING', updated_at = ? WHERE id = ("
        "SELECT id FROM ingest_events WHERE status = 'PENDING' AND next_attempt <= ? "
        f"ORDER BY next_attempt LIMIT 1) RETURNING {_FIELDS}", (now, now)).fetchone())


def next_due(conn: sqlite3.Connection) -> str | None:
    row = conn.execute(
        "SELECT min(next_attempt) FROM ingest_events WHERE status = 'PENDING'").fetchone()
    return row[0]


def save(conn: sqlite3.Connection, event_id: str, status: EventStatus, now: str,
         result: dict[str, Any] | None, error: str | None, attempts: int | None,
         next_attempt: str | None) -> None:
    conn.execute(
        "UPDATE ingest_events SET status = ?, result = coalesce(?, result), error = ?, "
        "attempts = coalesce(?, attempts), next_attempt = ?, updated_at = ? WHERE id = ?",
        (status, json.dumps(result) if result is not None else None, error, attempts,
         next_attempt, now, event_id))


def recover(conn: sqlite3.Connection, now: str) -> int:
    """Put events a dead process left RUNNING back in the queue; returns how many."""
    return conn.execute(
        "UPDATE ingest_events SET status = 'PENDING', next_attempt = ?, updated_at = ? "
        "WHERE status = 'RUNNING'", (now, now)).rowcount
