"""Model-version state in the store: the active version, and an embedder migration.

A migration re-embeds every memory with the target version into ``shadow_vectors`` while the
active version keeps serving; writes during it store both vectors in one transaction. The
switch copies the shadow vectors over in one transaction, so a crash leaves either the old
space or the new one, never a mix; the cursor lets a restarted gateway resume where it was.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np

from gateway.store.sqlite import Store, blob_vector, vector_blob


@dataclass(frozen=True, slots=True)
class ModelState:
    model: str
    active: str  # version number as text
    target: str | None  # set while a migration runs
    cursor: str  # last memory id re-embedded ('' = none yet)
    started_at: str | None


@dataclass(frozen=True, slots=True)
class PendingMemory:
    id: str
    user_id: str
    text: str
    updated_at: str
    archived: bool = False  # gets a target vector (include_archived scores it), no index entry


class VersionStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def state(self, model: str) -> ModelState | None:
        def work() -> ModelState | None:
            row = self.store.conn.execute(
                "SELECT model, active, target, cursor, started_at FROM model_state "
                "WHERE model = ?", (model,)
            ).fetchone()
            return None if row is None else ModelState(*row)

        return await self.store.run(work)

    async def set_active(self, model: str, version: str) -> None:
        """Record the active version (first start, reranker switch)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO model_state (model, active) VALUES (?, ?) "
                "ON CONFLICT (model) DO UPDATE SET active = excluded.active",
                (model, version),
            )

        await self.store.run(self.store.transaction, work)

    async def begin(self, model: str, target: str, at: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM shadow_vectors")
            conn.execute(
                "UPDATE model_state SET target = ?, cursor = '', started_at = ? WHERE model = ?",
                (target, at, model),
            )

        await self.store.run(self.store.transaction, work)

    async def pending(self, after_id: str, limit: int) -> list[PendingMemory]:
        """Memories after the cursor, in id order (the re-embed job's next batch)."""

        def work() -> list[PendingMemory]:
            rows = self.store.conn.execute(
                # The text as writes embed it: after its speaker (conversation.attributed).
                "SELECT id, user_id, coalesce(speaker || ': ', '') || text, updated_at, "
                "archived_at IS NOT NULL FROM memories WHERE id > ? "
                "ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
            return [PendingMemory(row[0], row[1], row[2], row[3], bool(row[4])) for row in rows]

        return await self.store.run(work)

    async def put_batch(
        self, model: str, label: str, batch: list[PendingMemory], vectors: np.ndarray
    ) -> list[PendingMemory]:
        """Store re-embedded vectors for rows unchanged since they were read; move the cursor.

        A row updated meanwhile already got its new-version vector from the update itself, so
        the (stale) one here is skipped. Returns the rows actually written.
        """

        def work(conn: sqlite3.Connection) -> list[PendingMemory]:
            written = []
            for item, vector in zip(batch, vectors, strict=True):
                cursor = conn.execute(
                    "INSERT OR REPLACE INTO shadow_vectors (memory_id, model, embedding) "
                    "SELECT ?, ?, ? WHERE EXISTS "
                    "(SELECT 1 FROM memories WHERE id = ? AND updated_at = ?)",
                    (item.id, label, vector_blob(vector), item.id, item.updated_at),
                )
                if cursor.rowcount == 1:
                    written.append(item)
            if batch:
                conn.execute("UPDATE model_state SET cursor = ? WHERE model = ?",
                             (batch[-1].id, model))
            return written

        return await self.store.run(self.store.transaction, work)

    async def shadow_vectors(self) -> list[tuple[str, str, np.ndarray]]:
        """(user_id, id, vector) of every shadow row but the archived (not indexed), to
        rebuild the target's index."""

        def work() -> list[tuple[str, str, np.ndarray]]:
            rows = self.store.conn.execute(
                "SELECT m.user_id, s.memory_id, s.embedding FROM shadow_vectors s "
                "JOIN memories m ON m.id = s.memory_id WHERE m.archived_at IS NULL"
            ).fetchall()
            return [(row[0], row[1], blob_vector(row[2])) for row in rows]

        return await self.store.run(work)

    async def progress(self) -> tuple[int, int]:
        """(memories with a target vector, all memories)."""

        def work() -> tuple[int, int]:
            done = self.store.conn.execute("SELECT count(*) FROM shadow_vectors").fetchone()[0]
            total = self.store.conn.execute("SELECT count(*) FROM memories").fetchone()[0]
            return int(done), int(total)

        return await self.store.run(work)

    async def switch(self, model: str, target: str, label: str) -> bool:
        """Make the target active, atomically; False (nothing changed) if a row lacks a vector."""

        def work(conn: sqlite3.Connection) -> bool:
            missing = conn.execute(
                "SELECT count(*) FROM memories m WHERE NOT EXISTS "
                "(SELECT 1 FROM shadow_vectors s WHERE s.memory_id = m.id AND s.model = ?)",
                (label,),
            ).fetchone()[0]
            if missing:
                return False
            conn.execute(
                "UPDATE memories SET embedding_model = ?, embedding = "
                "(SELECT embedding FROM shadow_vectors s WHERE s.memory_id = memories.id)",
                (label,),
            )
            conn.execute("DELETE FROM shadow_vectors")
            conn.execute(
                "UPDATE model_state SET active = ?, target = NULL, cursor = '', "
                "started_at = NULL WHERE model = ?", (target, model),
            )
            return True

        return await self.store.run(self.store.transaction, work)

    async def abandon(self, model: str) -> None:
        """Roll a migration back: the active version stays, shadow vectors go."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM shadow_vectors")
            conn.execute(
                "UPDATE model_state SET target = NULL, cursor = '', started_at = NULL "
                "WHERE model = ?", (model,),
            )

        await self.store.run(self.store.transaction, work)
