"""The SQLite store: one connection owned by one worker thread, so writes are serialised.

Every method is async and runs its SQL on that thread, off the event loop. A write returns only
after its transaction has committed: that is when a memory counts as stored.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from gateway.domain import normalise
from gateway.domain.model import HistoryEvent, Memory, SearchFilters, StoredMemory
from gateway.store import lexical
from gateway.store.faults import map_sqlite_errors
from gateway.store.migrations import migrate

T = TypeVar("T")
ShadowVector = tuple[str, np.ndarray]  # (target model label, vector) during a migration

_COLUMNS = (
    "id, user_id, agent_id, run_id, text, metadata, priority, created_at, updated_at, "
    "embedding_model, occurred_at, expires_at, role, speaker, archived_at, summary_id, sources"
)
ListOrder = Literal["id", "occurred_at"]


def _row_to_memory(row: sqlite3.Row) -> Memory:
    return Memory(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        run_id=row["run_id"],
        text=row["text"],
        metadata=json.loads(row["metadata"]),
        priority=row["priority"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        embedding_model=row["embedding_model"],
        occurred_at=row["occurred_at"],
        expires_at=row["expires_at"],
        role=row["role"],
        speaker=row["speaker"],
        archived_at=row["archived_at"],
        summary_id=row["summary_id"],
        sources=None if row["sources"] is None else tuple(json.loads(row["sources"])),
    )


def vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def blob_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def dump_metadata(metadata: dict[str, Any]) -> str:
    """Strict JSON (no NaN/Infinity), compact and key-sorted so equal objects compare equal."""
    return json.dumps(metadata, allow_nan=False, separators=(",", ":"), sort_keys=True)


def _metadata_condition(key: str, value: object) -> tuple[str, list[object]]:
    """One exact-match condition on a top-level metadata key, safe for any key text."""
    base = "EXISTS (SELECT 1 FROM json_each(m.metadata) j WHERE j.key = ?"
    if value is None:
        return base + " AND j.type = 'null')", [key]
    if isinstance(value, bool):
        return base + " AND j.type = ?)", [key, "true" if value else "false"]
    if isinstance(value, int | float):
        return base + " AND j.type IN ('integer', 'real') AND j.value = ?)", [key, value]
    return base + " AND j.type = 'text' AND j.value = ?)", [key, value]


def _filter_conditions(user_id: str, filters: SearchFilters) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``memories m`` for one user and every given filter."""
    where: list[str] = ["m.user_id = ?"]
    args: list[Any] = [user_id]
    for column in ("agent_id", "run_id"):
        value = getattr(filters, column)
        if value is not None:
            where.append(f"m.{column} = ?")
            args.append(value)
    ranges = (("created_at", filters.created_after, filters.created_before),
              ("occurred_at", filters.occurred_after, filters.occurred_before))
    for column, after, before in ranges:
        if after is not None:
            where.append(f"m.{column} >= ?")
            args.append(after)
        if before is not None:
            where.append(f"m.{column} < ?")
            args.append(before)
    if filters.live_at is not None:
        where.append("(m.expires_at IS NULL OR m.expires_at > ?)")
        args.append(filters.live_at)
    for key, value in filters.metadata.items():
        condition, condition_args = _metadata_condition(key, value)
        where.append(condition)
        args.extend(condition_args)
    return where, args


_LIVE_TABLES = ("lexical_index", "lexical_docs")
_ARCHIVE_TABLES = ("archive_lexical_index", "archive_lexical_docs")
READ_THREADS = 2  # reader connections: searches' reads run beside each other and the writer
# Keyword search ranks in FTS5 first and filters the best max(k * factor, min) rows after.
KEYWORD_PROBE_FACTOR = 4
KEYWORD_PROBE_MIN = 64


class Store:
    """Async facade over one SQLite file in WAL mode."""

    def __init__(self, path: Path, *, synchronous: Literal["NORMAL", "FULL"] = "FULL",
                 lexical_index: bool = True) -> None:
        self.path = path
        self._synchronous = synchronous
        self.lexical_index = lexical_index  # off: writes skip the keyword index (lexical.py)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        # Reads run on their own connections (WAL: readers never wait for the writer), so a
        # search does not queue behind a write transaction's fsync or behind other reads.
        self._readers = ThreadPoolExecutor(max_workers=READ_THREADS,
                                           thread_name_prefix="sqlite-read")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------
    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func`` on the writer thread (writes, and reads that must see the writer's
        own transaction)."""
        loop = asyncio.get_running_loop()
        with map_sqlite_errors():  # disk full / read-only: 507 / 503, not a 500
            return await loop.run_in_executor(self._executor, func, *args)

    async def read(self, func: Callable[..., T], *args: Any) -> T:
        """Run a read-only ``func`` on a reader thread; it sees every committed write."""
        loop = asyncio.get_running_loop()
        with map_sqlite_errors():
            return await loop.run_in_executor(self._readers, self._on_reader, func, args)

    def _on_reader(self, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._conn is None:
            raise RuntimeError("store is not open")
        if getattr(self._local, "conn", None) is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA query_only = ON")
            lexical.install(conn)
            normalise.install(conn)
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return func(*args)

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection: a reader's own, else the writer's."""
        if self._conn is None:
            raise RuntimeError("store is not open")
        local: sqlite3.Connection | None = getattr(self._local, "conn", None)
        return local if local is not None else self._conn

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA foreign_keys = ON")
        lexical.install(conn)
        normalise.install(conn)
        self._conn = conn
        version = migrate(conn)
        lexical.maintain(conn, self.lexical_index)
        return version

    async def open(self) -> int:
        """Open the file, apply pending migrations; returns the schema version."""
        return await self.run(self._open)

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self.run(_close)
        self._executor.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = work(conn)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return result

    @staticmethod
    def _record(
        conn: sqlite3.Connection, memory: Memory, event: str, old: str | None, new: str | None,
        payload: dict[str, Any], at: str,
    ) -> None:
        conn.execute(
            "INSERT INTO history (memory_id, user_id, event, old_text, new_text, payload, at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (memory.id, memory.user_id, event, old, new, dump_metadata(payload), at),
        )

    # -- writes -----------------------------------------------------------------------------
    @staticmethod
    def put_shadow(conn: sqlite3.Connection, memory_id: str, shadow: ShadowVector) -> None:
        """The memory's vector in the version being migrated to (see ``store.versions``)."""
        label, vector = shadow
        conn.execute(
            "INSERT OR REPLACE INTO shadow_vectors (memory_id, model, embedding) VALUES (?, ?, ?)",
            (memory_id, label, vector_blob(vector)),
        )

    async def insert_many(
        self, items: list[StoredMemory], shadows: list[ShadowVector] | None = None
    ) -> None:
        """Insert all or none, with an ADD event each (and their migration vectors, if any)."""
        await self.run(self.transaction, lambda conn: self.insert_rows(conn, items, shadows))

    @classmethod
    def insert_rows(
        cls, conn: sqlite3.Connection, items: list[StoredMemory],
        shadows: list[ShadowVector] | None = None, payload: dict[str, Any] | None = None,
    ) -> None:
        """``insert_many`` inside a caller's transaction; ``payload`` adds to each ADD event."""
        for position, item in enumerate(items):
            m = item.memory
            conn.execute(
                f"INSERT INTO memories ({_COLUMNS}, embedding, context) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (m.id, m.user_id, m.agent_id, m.run_id, m.text, dump_metadata(m.metadata),
                 m.priority, m.created_at, m.updated_at, m.embedding_model, m.occurred_at,
                 m.expires_at, m.role, m.speaker, None, m.summary_id,
                 None if m.sources is None else json.dumps(list(m.sources)),
                 vector_blob(item.embedding), item.context),
            )
            if m.archived_at is not None:  # an imported archived row: the move trigger takes
                conn.execute(  # it from the live lexical index to the archive's
                    "UPDATE memories SET archived_at = ? WHERE id = ?", (m.archived_at, m.id))
            cls._record(conn, m, "ADD", None, m.text, {"metadata": m.metadata,
                        "priority": m.priority, **(payload or {})}, m.created_at)
            if shadows is not None:
                cls.put_shadow(conn, m.id, shadows[position])

    async def update(
        self, updated: StoredMemory | Memory, previous: Memory, shadow: ShadowVector | None = None
    ) -> bool:
        """Replace a memory's fields (and vector, when given) if it still matches ``previous``.

        Returns False when the row changed or vanished meanwhile (the caller re-reads).
        """
        return await self.run(
            self.transaction, lambda conn: self.update_row(conn, updated, previous, shadow))

    @classmethod
    def update_row(
        cls, conn: sqlite3.Connection, updated: StoredMemory | Memory, previous: Memory,
        shadow: ShadowVector | None = None, payload: dict[str, Any] | None = None,
    ) -> bool:
        """``update`` inside a caller's transaction; ``payload`` adds to the UPDATE event."""
        memory = updated.memory if isinstance(updated, StoredMemory) else updated
        sets = ("text = ?, metadata = ?, priority = ?, updated_at = ?, embedding_model = ?, "
                "occurred_at = ?, expires_at = ?")
        args: list[Any] = [memory.text, dump_metadata(memory.metadata), memory.priority,
                           memory.updated_at, memory.embedding_model, memory.occurred_at,
                           memory.expires_at]
        if isinstance(updated, StoredMemory):
            sets += ", embedding = ?"
            args.append(vector_blob(updated.embedding))
        cursor = conn.execute(
            f"UPDATE memories SET {sets} WHERE id = ? AND updated_at = ?",
            [*args, memory.id, previous.updated_at],
        )
        if cursor.rowcount != 1:
            return False
        event = {"metadata": memory.metadata, "priority": memory.priority, **(payload or {})}
        cls._record(conn, memory, "UPDATE", previous.text, memory.text, event,
                    memory.updated_at)
        if shadow is not None:
            cls.put_shadow(conn, memory.id, shadow)
        return True

    async def delete(self, memory_id: str, at: str) -> tuple[Memory, list[StoredMemory]] | None:
        """Delete one memory; returns it and the archived sources its deletion restored (a
        deleted summary gives its sources back, see ``delete_rows``)."""

        def work(conn: sqlite3.Connection) -> tuple[Memory, list[StoredMemory]] | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE id = ?", (memory_id,)
            ).fetchone()
            if row is None:
                return None
            memory = _row_to_memory(row)
            return memory, self.delete_rows(conn, [memory], at, {})

        return await self.run(self.transaction, work)

    @classmethod
    def delete_rows(cls, conn: sqlite3.Connection, memories: list[Memory], at: str,
                    payload: dict[str, Any]) -> list[StoredMemory]:
        """Delete memories (a DELETE event each) inside a caller's transaction, keeping the
        archive consistent: a deleted archived source leaves its summary's ``sources``; a
        deleted summary's surviving sources are restored (no longer archived: nothing is
        lost with the summary), each with an UPDATE event naming it. Returns the restored
        memories with their vectors, for the caller to put back into the vector index."""
        gone = {m.id for m in memories}
        for memory in memories:
            conn.execute("DELETE FROM memories WHERE id = ?", (memory.id,))
            link = {"summary_id": memory.summary_id} if memory.summary_id else {}
            cls._record(conn, memory, "DELETE", memory.text, None, {**payload, **link}, at)
            if memory.summary_id is not None and memory.summary_id not in gone:
                conn.execute(
                    "UPDATE memories SET sources = (SELECT json_group_array(j.value) FROM "
                    "json_each(memories.sources) j WHERE j.value <> ?) WHERE id = ?",
                    (memory.id, memory.summary_id))
        restored: list[StoredMemory] = []
        for summary in memories:
            if summary.sources is None:
                continue
            rows = conn.execute(f"SELECT {_COLUMNS}, embedding FROM memories "
                                "WHERE summary_id = ? ORDER BY id", (summary.id,)).fetchall()
            for row in rows:
                before = _row_to_memory(row)
                after = replace(before, archived_at=None, summary_id=None,
                                updated_at=max(at, before.updated_at))
                conn.execute("UPDATE memories SET archived_at = NULL, summary_id = NULL, "
                             "updated_at = ? WHERE id = ?", (after.updated_at, after.id))
                cls._record(conn, after, "UPDATE", before.text, after.text,
                            {**payload, "restored_from": summary.id}, after.updated_at)
                restored.append(StoredMemory(after, blob_vector(row["embedding"])))
        return restored

    async def delete_user(self, user_id: str, at: str) -> list[str]:
        """Delete every memory of a user; returns their ids."""

        def work(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE user_id = ?", (user_id,)
            ).fetchall()
            for row in rows:
                self._record(conn, _row_to_memory(row), "DELETE", row["text"], None, {}, at)
            conn.execute("DELETE FROM memories WHERE user_id = ?", (user_id,))
            return [row["id"] for row in rows]

        return await self.run(self.transaction, work)

    # -- reads ------------------------------------------------------------------------------
    async def get(self, memory_id: str) -> Memory | None:
        def work() -> Memory | None:
            row = self.conn.execute(
                f"SELECT {_COLUMNS} FROM memories WHERE id = ?", (memory_id,)
            ).fetchone()
            return None if row is None else _row_to_memory(row)

        return await self.read(work)

    async def get_many(self, ids: list[str]) -> dict[str, Memory]:
        def work() -> dict[str, Memory]:
            found: dict[str, Memory] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self.conn.execute(
                    f"SELECT {_COLUMNS} FROM memories WHERE id IN ({marks})", chunk
                ):
                    found[row["id"]] = _row_to_memory(row)
            return found

        return await self.read(work)

    async def list_page(
        self, user_id: str, limit: int, after_id: str | None, *,
        order_by: ListOrder = "id", after_occurred: str | None = None,
        descending: bool = False, live_at: str | None = None, archived: bool = False,
    ) -> list[Memory]:
        """Up to ``limit`` of a user's memories after a position, in id (creation) order or
        in (occurred_at, id) order; ``live_at`` leaves out those expired at that instant.

        The position is the last row of the previous page (``after_id``, with its
        ``after_occurred`` when ordering by occurrence): keyset paging, stable under writes.
        Archived memories are listed only with ``archived``.
        """
        keys = "m.id" if order_by == "id" else "m.occurred_at, m.id"
        direction, beyond = ("DESC", "<") if descending else ("ASC", ">")
        where, args = ["m.user_id = ?"], [user_id]
        if after_id is not None:
            if order_by == "id":
                where.append(f"m.id {beyond} ?")
                args.append(after_id)
            else:
                where.append(f"(m.occurred_at, m.id) {beyond} (?, ?)")
                args.extend([after_occurred or "", after_id])
        if live_at is not None:
            where.append("(m.expires_at IS NULL OR m.expires_at > ?)")
            args.append(live_at)
        if not archived:
            where.append("m.archived_at IS NULL")
        order = ", ".join(f"{key} {direction}" for key in keys.split(", "))
        sql = (f"SELECT {_COLUMNS} FROM memories m WHERE {' AND '.join(where)} "
               f"ORDER BY {order} LIMIT ?")

        def work() -> list[Memory]:
            rows = self.conn.execute(sql, [*args, limit]).fetchall()
            return [_row_to_memory(row) for row in rows]

        return await self.read(work)

    async def history(self, memory_id: str) -> list[HistoryEvent]:
        def work() -> list[HistoryEvent]:
            rows = self.conn.execute(
                "SELECT memory_id, event, old_text, new_text, payload, at, user_id FROM history "
                "WHERE memory_id = ? ORDER BY seq",
                (memory_id,),
            ).fetchall()
            return [
                HistoryEvent(r["memory_id"], r["event"], r["old_text"], r["new_text"],
                             json.loads(r["payload"]), r["at"], r["user_id"])
                for r in rows
            ]

        return await self.read(work)

    async def filter_ids(self, user_id: str, filters: SearchFilters) -> set[str]:
        """Ids of the user's memories that satisfy every filter condition."""
        where, args = _filter_conditions(user_id, filters)
        sql = f"SELECT m.id FROM memories m WHERE {' AND '.join(where)}"

        def work() -> set[str]:
            return {row[0] for row in self.conn.execute(sql, args)}

        return await self.read(work)

    async def expired_ids(self, user_id: str, at: str, limit: int) -> set[str]:
        """Up to ``limit`` ids of the user's memories expired at ``at`` (a partial index)."""

        def work() -> set[str]:
            rows = self.conn.execute(
                "SELECT id FROM memories WHERE user_id = ? AND expires_at IS NOT NULL "
                "AND expires_at <= ? AND archived_at IS NULL LIMIT ?", (user_id, at, limit),
            )
            return {row[0] for row in rows}

        return await self.read(work)

    async def keyword_search(
        self, user_id: str, query: str, k: int, filters: SearchFilters, *,
        date_weight: float = 1.0, archived: bool = False,
        context_weight: float = lexical.CONTEXT_WEIGHT,
    ) -> list[tuple[str, float]]:
        """BM25 keyword search over the user's memories (see ``lexical.LexicalSearch``).

        ``date_weight`` weighs matches in the memory's date ("8 May 2023") against matches in
        its text (1.0); 0 searches the text only. ``context_weight`` does the same for a
        message's conversation context. ``archived`` searches the archived
        memories instead (their own index, ``lexical.ARCHIVE_SCHEMA``).
        """
        fts, docs = _ARCHIVE_TABLES if archived else _LIVE_TABLES
        expression = lexical.match_expression(user_id, query, with_dates=date_weight > 0,
                                              with_context=context_weight > 0)
        if expression is None:
            return []
        where, args = _filter_conditions(user_id, filters)
        probe = max(k * KEYWORD_PROBE_FACTOR, KEYWORD_PROBE_MIN)
        # bm25() is negative-is-better; it is turned around here, once.
        ranked_sql = (
            f"SELECT rowid, bm25({fts}, 1.0, ?, ?) AS score FROM {fts} "
            f"WHERE {fts} MATCH ? ORDER BY score LIMIT ?"
        )
        joined_sql = (
            f"SELECT d.memory_id, bm25({fts}, 1.0, ?, ?) AS rank FROM {fts} "
            f"JOIN {docs} d ON d.doc = {fts}.rowid "
            "JOIN memories m ON m.id = d.memory_id "
            f"WHERE {fts} MATCH ? AND {' AND '.join(where)} ORDER BY rank LIMIT ?"
        )

        def work() -> list[tuple[str, float]]:
            # Fast path: rank inside FTS5 alone, then look up and filter only the best
            # ``probe`` rows (joining every match costs more than ranking it on big users).
            ranked = self.conn.execute(ranked_sql, [date_weight, context_weight,
                                                     expression, probe]).fetchall()
            kept = self._keep_docs([row[0] for row in ranked], where, args, docs)
            found = [(kept[doc], -float(score)) for doc, score in ranked if doc in kept]
            if len(found) >= k or len(ranked) < probe:
                return found[:k]  # every match was ranked, or enough passed the filters
            # Filters removed most of the best rows: rank the filtered matches instead.
            rows = self.conn.execute(joined_sql, [date_weight, context_weight, expression,
                                                 *args, k]).fetchall()
            return [(row[0], -float(row[1])) for row in rows]

        return await self.read(work)

    def _keep_docs(self, docs: list[int], where: list[str], args: list[Any],
                   table: str = "lexical_docs") -> dict[int, str]:
        """doc -> memory id for the docs whose memory passes ``where`` (the user and filters)."""
        if not docs:
            return {}
        marks = ",".join("?" * len(docs))
        rows = self.conn.execute(
            # CROSS JOIN keeps the docs as the outer loop: the planner would otherwise walk
            # every memory of the user (its index on user_id) and probe the docs for each.
            f"SELECT d.doc, d.memory_id FROM {table} d CROSS JOIN memories m "
            f"ON m.id = d.memory_id WHERE d.doc IN ({marks}) AND {' AND '.join(where)}",
            [*docs, *args],
        ).fetchall()
        return {row[0]: row[1] for row in rows}

    async def embeddings(self, ids: list[str]) -> dict[str, tuple[str, np.ndarray]]:
        """(model label, vector) of each found id: cosines for hits the vector search missed."""

        def work() -> dict[str, tuple[str, np.ndarray]]:
            found: dict[str, tuple[str, np.ndarray]] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self.conn.execute(
                    f"SELECT id, embedding_model, embedding FROM memories WHERE id IN ({marks})",
                    chunk,
                ):
                    found[row[0]] = (row[1], blob_vector(row[2]))
            return found

        return await self.read(work)

    async def count(self) -> int:
        return await self.run(
            lambda: self.conn.execute("SELECT count(*) FROM memories").fetchone()[0]
        )

    async def user_vectors(self, user_id: str) -> tuple[list[str], np.ndarray]:
        """One user's ids and vectors (archived ones aside: they are not indexed), for
        reloading an evicted index partition."""

        def work() -> tuple[list[str], np.ndarray]:
            rows = self.conn.execute(
                "SELECT id, embedding FROM memories WHERE user_id = ? AND archived_at IS NULL "
                "ORDER BY id", (user_id,)
            ).fetchall()
            if not rows:
                return [], np.zeros((0, 0), dtype=np.float32)
            return [r[0] for r in rows], np.stack([blob_vector(r[1]) for r in rows])

        return await self.run(work)

    async def vectors(self, batch: int = 5000) -> list[tuple[str, str, np.ndarray]]:
        """Every (user_id, id, vector) in the store but the archived, for rebuilding the
        index."""

        def work() -> list[tuple[str, str, np.ndarray]]:
            return list(self._iter_vectors(batch))

        return await self.run(work)

    def _iter_vectors(self, batch: int) -> Iterator[tuple[str, str, np.ndarray]]:
        cursor = self.conn.execute("SELECT user_id, id, embedding FROM memories "
                                   "WHERE archived_at IS NULL ORDER BY user_id")
        while rows := cursor.fetchmany(batch):
            for row in rows:
                yield row[0], row[1], blob_vector(row[2])


