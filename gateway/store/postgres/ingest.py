"""Ingest in PostgreSQL: exact-duplicate lookups (the stored text key, indexed with the user)
and one-transaction write plans, as the SQLite backend's ``ingest``."""

from __future__ import annotations

from gateway.domain.model import Memory
from gateway.store.postgres.lexical import Lexicon
from gateway.store.postgres.memories import insert_rows, update_row
from gateway.store.postgres.rows import COLUMNS, Conn, fetch_one, record, row_to_memory, rowcount
from gateway.store.types import ExactQuery, StaleWrite, WritePlan

_EXACT = (f"SELECT {COLUMNS} FROM memories WHERE user_id = %s AND text_key = %s "
          "AND agent_id IS NOT DISTINCT FROM %s AND run_id IS NOT DISTINCT FROM %s "
          "AND (expires_at IS NULL OR expires_at > %s) AND archived_at IS NULL "
          "AND modality = 'text' "
          "ORDER BY id LIMIT 1")


async def exact_matches(conn: Conn, queries: list[ExactQuery], live_at: str
                        ) -> list[Memory | None]:
    """For each query, the oldest live memory in its scope with the same text key."""
    found: list[Memory | None] = []
    for q in queries:
        row = await fetch_one(conn, _EXACT, (q.user_id, q.key, q.agent_id, q.run_id, live_at))
        found.append(None if row is None else row_to_memory(row))
    return found


async def apply(conn: Conn, lexicon: Lexicon, plan: WritePlan) -> None:
    """Write the whole plan inside the caller's transaction, or raise ``StaleWrite``."""
    await insert_rows(conn, lexicon, plan.inserts, plan.shadows, plan.payload)
    for change in plan.changes:
        if not await update_row(conn, lexicon, change.updated, change.previous, change.shadow,
                                payload={**plan.payload, **change.payload}):
            raise StaleWrite(change.previous.id)
    for memory in plan.deletes:
        if await rowcount(conn, "DELETE FROM memories WHERE id = %s AND updated_at = %s",
                          (memory.id, memory.updated_at)) != 1:
            raise StaleWrite(memory.id)
        await record(conn, memory, "DELETE", memory.text, None,
                     {**plan.payload, **plan.links.get(memory.id, {})},
                     plan.at or memory.updated_at)
