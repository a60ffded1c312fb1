"""Store operations for ingest: exact-duplicate lookups and one-transaction write plans.

A write plan (new memories, changed memories, deleted memories) commits in one transaction or
not at all: a batch with duplicates, or an LLM's decision set, never lands half-applied.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from gateway.domain.model import Memory, StoredMemory
from gateway.domain.normalise import TEXT_KEY_FUNCTION, text_key
from gateway.store.sqlite import _COLUMNS, ShadowVector, Store, _row_to_memory


@dataclass(frozen=True, slots=True)
class ExactQuery:
    """Is there a live memory with this text key in this scope?"""

    user_id: str
    agent_id: str | None
    run_id: str | None
    key: str


@dataclass(frozen=True, slots=True)
class Change:
    """An existing memory's new state, applied only if it still is ``previous``."""

    previous: Memory
    updated: Memory | StoredMemory  # with a vector when the text changed
    payload: dict[str, Any] = field(default_factory=dict)  # goes into the UPDATE event
    shadow: ShadowVector | None = None  # the new text's vector in a migration's target


@dataclass(slots=True)
class WritePlan:
    inserts: list[StoredMemory] = field(default_factory=list)
    shadows: list[ShadowVector] | None = None  # one per insert during a migration
    changes: list[Change] = field(default_factory=list)
    deletes: list[Memory] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)  # goes into every event
    at: str = ""  # when the deletes happen (their DELETE events)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)  # memory id -> its event's


class StaleWrite(Exception):
    """A memory in the plan changed or vanished since it was read; nothing was written."""


class IngestStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def exact_matches(self, queries: list[ExactQuery], live_at: str) -> list[Memory | None]:
        """For each query, the oldest live memory in its scope with the same text key."""
        sql = (f"SELECT {_COLUMNS} FROM memories WHERE user_id = ? "
               f"AND {TEXT_KEY_FUNCTION}(text) = ? AND agent_id IS ? AND run_id IS ? "
               "AND (expires_at IS NULL OR expires_at > ?) AND archived_at IS NULL "
               "ORDER BY id LIMIT 1")

        def work() -> list[Memory | None]:
            found: list[Memory | None] = []
            for q in queries:
                row = self.store.conn.execute(
                    sql, (q.user_id, q.key, q.agent_id, q.run_id, live_at)).fetchone()
                found.append(None if row is None else _row_to_memory(row))
            return found

        return await self.store.run(work)

    async def apply(self, plan: WritePlan) -> None:
        """Commit the whole plan, or raise ``StaleWrite`` having written nothing."""

        def work(conn: sqlite3.Connection) -> None:
            Store.insert_rows(conn, plan.inserts, plan.shadows, plan.payload)
            for change in plan.changes:
                if not Store.update_row(conn, change.updated, change.previous, change.shadow,
                                        payload={**plan.payload, **change.payload}):
                    raise StaleWrite(change.previous.id)
            for memory in plan.deletes:
                if conn.execute("DELETE FROM memories WHERE id = ? AND updated_at = ?",
                                (memory.id, memory.updated_at)).rowcount != 1:
                    raise StaleWrite(memory.id)
                Store._record(conn, memory, "DELETE", memory.text, None,
                              {**plan.payload, **plan.links.get(memory.id, {})},
                              plan.at or memory.updated_at)

        await self.store.run(self.store.transaction, work)


__all__ = ["Change", "ExactQuery", "IngestStore", "StaleWrite", "WritePlan", "text_key"]
