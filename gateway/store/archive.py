"""Store operations of the archive: fold sources into a summary, read what the compress job
and ``include_archived`` searches need, delete what expired.

A fold inserts the summary (an ADD event listing its sources) and archives every source (an
UPDATE event naming the summary): all of it commits or nothing does, so a crash leaves each
group either folded or untouched. A source changed or archived since the job read it makes
the whole plan stale (``StaleWrite``); the job reads again. Deletes keep the archive
consistent through ``Store.delete_rows`` (a deleted summary restores its sources).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gateway.domain.model import Memory, SearchFilters, StoredMemory
from gateway.store.ingest import StaleWrite
from gateway.store.sqlite import (
    _COLUMNS,
    ShadowVector,
    Store,
    _filter_conditions,
    _row_to_memory,
    blob_vector,
)


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

    async def compressible(self, user_id: str, max_priority: int, live_at: str, *,
                           after: str = "", limit: int = -1) -> list[StoredMemory]:
        """The user's live memories with priority at most ``max_priority`` that are not
        summaries, archived ones included, with their vectors, in id order (the compress
        job's input, ``gateway.jobs.compress``); a page of ``limit`` after id ``after``
        (-1: all)."""

        def work() -> list[StoredMemory]:
            rows = self.store.conn.execute(
                f"SELECT {_COLUMNS}, embedding FROM memories WHERE user_id = ? "
                "AND priority <= ? AND sources IS NULL "
                "AND (expires_at IS NULL OR expires_at > ?) AND id > ? ORDER BY id LIMIT ?",
                (user_id, max_priority, live_at, after, limit)).fetchall()
            return [StoredMemory(_row_to_memory(r), blob_vector(r["embedding"])) for r in rows]

        return await self.store.read(work)

    async def archived_vectors(self, user_id: str, filters: SearchFilters
                               ) -> list[tuple[str, str, np.ndarray]]:
        """(id, model label, vector) of the user's archived memories passing ``filters``:
        ``include_archived`` searches score them exactly, as they are not in the index."""
        where, args = _filter_conditions(user_id, filters)
        sql = (f"SELECT m.id, m.embedding_model, m.embedding FROM memories m "
               f"WHERE m.archived_at IS NOT NULL AND {' AND '.join(where)}")

        def work() -> list[tuple[str, str, np.ndarray]]:
            rows = self.store.conn.execute(sql, args)
            return [(row[0], row[1], blob_vector(row[2])) for row in rows]

        return await self.store.read(work)

    async def delete_expired(self, user_id: str, at: str
                             ) -> tuple[list[Memory], list[StoredMemory]]:
        """Delete the user's memories expired at ``at`` (archived ones too) in one
        transaction, with history (``{"reason": "expired"}``); returns them and the sources
        restored from expired summaries (see ``Store.delete_rows``)."""

        def work(conn: sqlite3.Connection) -> tuple[list[Memory], list[StoredMemory]]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE user_id = ? AND expires_at IS NOT NULL "
                "AND expires_at <= ? ORDER BY id", (user_id, at)).fetchall()
            expired = [_row_to_memory(row) for row in rows]
            return expired, Store.delete_rows(conn, expired, at, {"reason": "expired"})

        return await self.store.run(self.store.transaction, work)
