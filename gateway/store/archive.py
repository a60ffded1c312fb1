"""Store operations of the archive: fold sources into a summary in one transaction.

A fold inserts the summary (an ADD event listing its sources) and archives every source (an
UPDATE event naming the summary): all of it commits or nothing does, so a crash leaves each
group either folded or untouched. A source changed or archived since the job read it makes
the whole plan stale (``StaleWrite``); the job reads again.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from gateway.memory.model import Memory, StoredMemory
from gateway.store.ingest import StaleWrite
from gateway.store.sqlite import ShadowVector, Store


@dataclass(frozen=True, slots=True)
class Fold:
    summary: StoredMemory  # its ``sources`` lists the sources' ids
    sources: list[Memory]  # as the job read them
    payload: dict[str, Any] = field(default_factory=dict)  # into the summary's ADD event
    shadow: ShadowVector | None = None  # the summary's vector in a migration's target


class ArchiveStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def fold(self, folds: list[Fold], at: str) -> None:
        """Commit every fold, or raise ``StaleWrite`` having written nothing."""

        def work(conn: sqlite3.Connection) -> None:
            for plan in folds:
                summary = plan.summary.memory
                shadows = None if plan.shadow is None else [plan.shadow]
                Store.insert_rows(conn, [plan.summary], shadows, plan.payload)
                for source in plan.sources:
                    updated_at = max(at, source.updated_at)
                    if conn.execute(
                        "UPDATE memories SET archived_at = ?, summary_id = ?, updated_at = ? "
                        "WHERE id = ? AND updated_at = ? AND archived_at IS NULL",
                        (at, summary.id, updated_at, source.id, source.updated_at),
                    ).rowcount != 1:
                        raise StaleWrite(source.id)
                    Store._record(conn, source, "UPDATE", source.text, source.text,
                                  {"reason": "compress", "archived_into": summary.id},
                                  updated_at)

        await self.store.run(self.store.transaction, work)
