"""Ingest in SQLite: exact-duplicate lookups and one-transaction write plans.

A write plan (new memories, changed memories, deleted memories) commits in one transaction or
not at all: a batch with duplicates, or an LLM's decision set, never lands half-applied.
"""

from __future__ import annotations

import sqlite3

from gateway.domain.model import Memory
from gateway.store.sqlite.functions import TEXT_KEY_FUNCTION
from gateway.store.sqlite.memories import insert_rows, update_row
from gateway.store.sqlite.rows import COLUMNS, record, row_to_memory
from gateway.store.types import ExactQuery, StaleWrite, WritePlan

_EXACT = (f"SELECT {COLUMNS} FROM memories WHERE user_id = ? "
          f"AND {TEXT_KEY_FUNCTION}(text) = ? AND agent_id IS ? AND run_id IS ? "
          "AND (expires_at IS NULL OR expires_at > ?) AND archived_at IS NULL "
          "AND modality = 'text' "
          "ORDER BY id LIMIT 1")


def exact_matches(conn: sqlite3.Connection, queries: list[ExactQuery], live_at: str
                  ) -> list[Memory | None]:
    """For each query, the oldest live memory in its scope with the same text key."""
    found: list[Memory | None] = []
    for q in queries:
        row = conn.execute(_EXACT, (q.user_id, q.key, q.agent_id, q.run_id, live_at)).fetchone()
        found.append(None if row is None else row_to_memory(row))
    return found


def apply(conn: sqlite3.Connection, plan: WritePlan) -> None:
    """Write the whole plan inside the caller's transaction, or raise ``StaleWrite``."""
    insert_rows(conn, plan.inserts, plan.shadows, plan.payload)
    for change in plan.changes:
        if not update_row(conn, change.updated, change.previous, change.shadow,
                          payload={**plan.payload, **change.payload}):
            raise StaleWrite(change.previous.id)
    for memory in plan.deletes:
        if conn.execute("DELETE FROM memories WHERE id = ? AND updated_at = ?",
                        (memory.id, memory.updated_at)).rowcount != 1:
            raise StaleWrite(memory.id)
        record(conn, memory, "DELETE", memory.text, None,
               {**plan.payload, **plan.links.get(memory.id, {})}, plan.at or memory.updated_at)
