"""Retention in SQLite: drop finished jobs, finished ingest events and the history of memories
deleted long enough ago, a bounded batch per transaction.

A live memory's history is never dropped, whatever its age: only memories whose row is gone
and whose ``DELETE`` event is older than the cut-off (found through the partial index
``history_deletes``). Queued or running jobs and pending or running events are never dropped.
"""

from __future__ import annotations

import sqlite3

BATCH = 500  # rows (or deleted memories) per transaction: the writer is never held long


def jobs(conn: sqlite3.Connection, before: str) -> int:
    return conn.execute(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status IN ('done', 'failed') "
        "AND finished_at < ? LIMIT ?)", (before, BATCH)).rowcount


def events(conn: sqlite3.Connection, before: str) -> int:
    return conn.execute(
        "DELETE FROM ingest_events WHERE id IN (SELECT id FROM ingest_events "
        "WHERE status IN ('SUCCEEDED', 'FAILED') AND updated_at < ? LIMIT ?)",
        (before, BATCH)).rowcount


def history(conn: sqlite3.Connection, before: str) -> int:
    """History rows of up to ``BATCH`` memories deleted before ``before``."""
    gone = [row[0] for row in conn.execute(
        "SELECT DISTINCT memory_id FROM history AS h WHERE event = 'DELETE' AND at < ? "
        "AND NOT EXISTS (SELECT 1 FROM memories AS m WHERE m.id = h.memory_id) LIMIT ?",
        (before, BATCH))]
    if not gone:
        return 0
    marks = ", ".join("?" * len(gone))
    return conn.execute(f"DELETE FROM history WHERE memory_id IN ({marks})", gone).rowcount
