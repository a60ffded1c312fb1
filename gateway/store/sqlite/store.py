"""The SQLite store: one connection owned by one worker thread, so writes are serialised.

Every operation is async and runs its SQL on that thread, off the event loop; reads run on
their own reader connections (WAL: readers never wait for the writer). A write returns only
after its transaction has committed: that is when a memory counts as stored. The SQL lives in
one module per concept (``memories``, ``keyword``, ``ingest``, ``archive``, ``events``,
``jobs``, ``versions``, ``census``); this class is the ``gateway.store.base.Store`` over them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np

from gateway.domain.model import (
    HistoryEvent,
    Memory,
    SearchFilters,
    StoredImage,
    StoredMemory,
)
from gateway.store import types
from gateway.store.sqlite import (
    archive,
    census,
    erasure,
    events,
    feed,
    functions,
    image_versions,
    images,
    ingest,
    jobs,
    keyword,
    lexical,
    memories,
    retention,
    versions,
)
from gateway.store.sqlite.faults import map_sqlite_errors
from gateway.store.sqlite.migrations import migrate
from gateway.store.sqlite.private import make_private
from gateway.threads import lower_thread_priority
from gateway.write_first import WriteFirst

T = TypeVar("T")
READ_THREADS = 2  # reader connections: searches' reads run beside each other and the writer
# Keyword search's threads run at this nice value above the process's, as the vector search
# thread does (``gateway.index.batcher``): on a saturated machine the writer, which answers
# adds, gets the cores first, and a burst of searches cannot starve it.
KEYWORD_THREAD_NICE = 5
# A keyword query looks this often (SQLite VM steps, some tens of microseconds) whether a
# single write is in flight, and pauses for it (``gateway.write_first``).
PAUSE_CHECK_STEPS = 2000


class SQLiteStore:
    """Async facade over one SQLite file in WAL mode."""

    def __init__(self, path: Path, *, synchronous: Literal["NORMAL", "FULL"] = "FULL",
                 lexical_index: bool = True, feed_poll_s: float = 0.05,
                 write_first: WriteFirst | None = None) -> None:
        self.path = path
        self._write_first = write_first  # keyword queries pause for single writes
        # This instance's name in the change log: gateways sharing the file skip their own.
        self._origin = uuid.uuid4().hex
        self._feed_poll_s = feed_poll_s  # how often ``wait_for_change`` looks at the log
        self._synchronous = synchronous
        self.lexical_index = lexical_index  # off: writes skip the keyword index (lexical.py)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None
        # Reads run on their own connections, so a search does not queue behind a write
        # transaction's fsync or behind other reads.
        self._readers = ThreadPoolExecutor(max_workers=READ_THREADS,
                                           thread_name_prefix="sqlite-read")
        self._keyword_readers = ThreadPoolExecutor(
            max_workers=READ_THREADS, thread_name_prefix="sqlite-keyword",
            initializer=lower_thread_priority, initargs=(KEYWORD_THREAD_NICE,))
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._lexical_key = lexical.LexicalKey()  # the store's secret, loaded at open

    # -- plumbing ---------------------------------------------------------------------------
    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func`` on the writer thread (writes, and reads that must see the writer's
        own transaction)."""
        loop = asyncio.get_running_loop()
        with map_sqlite_errors():  # disk full / read-only: 507 / 503, not a 500
            return await loop.run_in_executor(self._executor, func, *args)

    async def read(self, func: Callable[..., T], *args: Any,
                   pool: ThreadPoolExecutor | None = None) -> T:
        """Run a read-only ``func`` on a reader thread (of ``pool``, else the readers); it sees
        every committed write."""
        loop = asyncio.get_running_loop()
        with map_sqlite_errors():
            return await loop.run_in_executor(pool or self._readers, self._on_reader, func,
                                              args)

    def _on_reader(self, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._conn is None:
            raise RuntimeError("store is not open")
        if getattr(self._local, "conn", None) is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA query_only = ON")
            functions.install(conn, self._lexical_key)
            feed.install(conn, self._origin)
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
        make_private(self.path)  # 0600; the -wal and -shm files take the file's mode
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        # deleted rows are overwritten with zeros, not left in free pages (see erasure.py)
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA foreign_keys = ON")
        functions.install(conn, self._lexical_key)
        feed.install(conn, self._origin)
        self._lexical_key.load(conn)
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
        self._keyword_readers.shutdown(wait=True)
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

    async def _write(self, func: Callable[..., T], *args: Any) -> T:
        """``func(conn, *args)`` in one transaction on the writer thread."""
        return await self.run(self.transaction, lambda conn: func(conn, *args))

    async def _on_writer(self, func: Callable[..., T], *args: Any) -> T:
        """``func(conn, *args)`` on the writer thread, outside a transaction."""
        return await self.run(lambda: func(self.conn, *args))

    async def _read(self, func: Callable[..., T], *args: Any) -> T:
        """``func(conn, *args)`` on a reader thread."""
        return await self.read(lambda: func(self.conn, *args))

    # -- memories ---------------------------------------------------------------------------
    async def insert_many(self, items: list[StoredMemory],
                          shadows: list[types.ShadowVector] | None = None) -> None:
        try:
            await self._write(memories.insert_rows, items, shadows)
        except sqlite3.IntegrityError as exc:  # the transaction was rolled back
            raise types.RowConflict(str(exc)) from exc

    async def update(self, updated: StoredMemory | Memory, previous: Memory,
                     shadow: types.ShadowVector | None = None) -> bool:
        return await self._write(memories.update_row, updated, previous, shadow)

    async def delete(self, memory_id: str, at: str) -> tuple[Memory, list[StoredMemory]] | None:
        return await self._write(memories.delete_one, memory_id, at)

    async def delete_user(self, user_id: str, at: str) -> list[str]:
        return await self._write(memories.delete_user, user_id, at)

    async def erase(self, memory_id: str, at: str) -> types.Erased | None:
        erased = await self._write(erasure.erase_one, memory_id, at)
        if erased is not None:
            await self._on_writer(erasure.scrub)
        return erased

    async def erase_user(self, user_id: str) -> list[str]:
        ids = await self._write(erasure.erase_user, user_id)
        await self._on_writer(erasure.scrub)
        return ids

    async def get(self, memory_id: str) -> Memory | None:
        return await self._read(memories.get, memory_id)

    async def get_many(self, ids: list[str]) -> dict[str, Memory]:
        return await self._read(memories.get_many, ids)

    async def list_page(
        self, user_id: str, limit: int, after_id: str | None, *,
        order_by: types.ListOrder = "id", after_occurred: str | None = None,
        descending: bool = False, live_at: str | None = None, archived: bool = False,
    ) -> list[Memory]:
        return await self._read(partial(
            memories.list_page, order_by=order_by, after_occurred=after_occurred,
            descending=descending, live_at=live_at, archived=archived), user_id, limit, after_id)

    async def history(self, memory_id: str) -> list[HistoryEvent]:
        return await self._read(memories.history, memory_id)

    async def filter_ids(self, user_id: str, filters: SearchFilters) -> set[str]:
        return await self._read(memories.filter_ids, user_id, filters)

    async def expired_ids(self, user_id: str, at: str, limit: int) -> set[str]:
        return await self._read(memories.expired_ids, user_id, at, limit)

    async def keyword_search(
        self, user_id: str, query: str, k: int, filters: SearchFilters, *,
        date_weight: float = 1.0, archived: bool = False,
        context_weight: float = types.CONTEXT_WEIGHT,
    ) -> list[tuple[str, float]]:
        search = self._ranker(date_weight, archived, context_weight)
        return await self._on_keyword_thread(search, user_id, query, k, filters)

    async def keyword_memories(
        self, user_id: str, query: str, k: int, filters: SearchFilters, *,
        date_weight: float = 1.0, archived: bool = False,
        context_weight: float = types.CONTEXT_WEIGHT,
    ) -> list[tuple[Memory, float]]:
        search = self._ranker(date_weight, archived, context_weight)

        def hits_with_rows(conn: sqlite3.Connection, *args: Any) -> list[tuple[Memory, float]]:
            hits = search(conn, *args)
            found = memories.get_many(conn, [i for i, _ in hits])
            return [(found[i], score) for i, score in hits if i in found]

        return await self._on_keyword_thread(hits_with_rows, user_id, query, k, filters)

    def _ranker(self, date_weight: float, archived: bool,
                context_weight: float) -> Callable[..., list[tuple[str, float]]]:
        return partial(keyword.keyword_search, date_weight=date_weight, archived=archived,
                       context_weight=context_weight, key=self._lexical_key)

    async def _on_keyword_thread(self, search: Callable[..., T], *args: Any) -> T:
        """``search(conn, *args)`` on a keyword thread's connection, pausing for single
        writes."""
        return await self.read(lambda: self._pausing(search, *args), pool=self._keyword_readers)

    def _pausing(self, search: Callable[..., T], *args: Any) -> T:
        """On a keyword thread: ``search(conn, *args)``, pausing for single writes."""
        conn, gate = self.conn, self._write_first
        if gate is None:
            return search(conn, *args)
        gate.begin_thread_step()
        conn.set_progress_handler(gate.pause_thread, PAUSE_CHECK_STEPS)
        try:
            return search(conn, *args)
        finally:
            conn.set_progress_handler(None, 0)

    async def embeddings(self, ids: list[str]) -> dict[str, tuple[str, np.ndarray]]:
        return await self._read(memories.embeddings, ids)

    async def existing_ids(self, ids: list[str]) -> set[str]:
        return await self._on_writer(memories.existing_ids, ids)

    async def count(self) -> int:
        return await self._on_writer(memories.count)

    async def user_vectors(self, user_id: str) -> tuple[list[str], np.ndarray]:
        return await self._on_writer(memories.user_vectors, user_id)

    async def image(self, memory_id: str) -> StoredImage | None:
        return await self._read(images.get, memory_id)

    async def image_vectors(self, user_id: str, model: str, filters: SearchFilters
                            ) -> tuple[list[str], np.ndarray]:
        return await self._read(images.vectors, user_id, model, filters)

    async def vectors(self, batch: int = 5000) -> list[tuple[str, str, np.ndarray]]:
        return await self._on_writer(memories.vectors, batch)

    # -- ingest and archive -----------------------------------------------------------------
    async def exact_matches(self, queries: list[types.ExactQuery], live_at: str
                            ) -> list[Memory | None]:
        return await self._on_writer(ingest.exact_matches, queries, live_at)

    async def apply(self, plan: types.WritePlan) -> None:
        await self._write(ingest.apply, plan)

    async def fold(self, folds: list[types.Fold], at: str) -> None:
        await self._write(archive.fold, folds, at)

    async def compressible(self, user_id: str, max_priority: int, live_at: str, *,
                           after: str = "", limit: int = -1) -> list[StoredMemory]:
        return await self._read(archive.compressible, user_id, max_priority, live_at, after,
                                limit)

    async def archived_vectors(self, user_id: str, filters: SearchFilters
                               ) -> list[tuple[str, str, np.ndarray]]:
        return await self._read(archive.archived_vectors, user_id, filters)

    async def delete_expired(self, user_id: str, at: str
                             ) -> tuple[list[Memory], list[StoredMemory]]:
        return await self._write(archive.delete_expired, user_id, at)

    # -- census -----------------------------------------------------------------------------
    async def user_counts(self, users: list[str]) -> dict[str, int]:
        return await self._read(census.user_counts, users)

    async def census(self, quantiles: tuple[float, ...]) -> types.Census:
        return await self._read(census.census, quantiles)

    async def populations(self, tag_key: str, user_prefix: str = "",
                          without: str | None = None) -> list[types.Population]:
        return await self._read(census.populations, tag_key, user_prefix, without)

    # -- ingest events ----------------------------------------------------------------------
    async def create_event(self, event_id: str, user_id: str, request: dict[str, Any],
                           now: str, *, next_attempt: str | None = None, attempts: int = 0,
                           error: str | None = None) -> None:
        await self._write(events.create, event_id, user_id, request, now, next_attempt,
                          attempts, error)

    async def get_event(self, event_id: str) -> types.IngestEvent | None:
        return await self._on_writer(events.get, event_id)

    async def claim_event(self, now: str) -> types.IngestEvent | None:
        return await self._write(events.claim_due, now)

    async def next_event_due(self) -> str | None:
        return await self._on_writer(events.next_due)

    async def save_event(self, event_id: str, status: types.EventStatus, now: str, *,
                         result: dict[str, Any] | None = None, error: str | None = None,
                         attempts: int | None = None, next_attempt: str | None = None) -> None:
        await self._write(events.save, event_id, status, now, result, error, attempts,
                          next_attempt)

    async def recover_events(self, now: str) -> int:
        return await self._write(events.recover, now)

    # -- jobs -------------------------------------------------------------------------------
    async def create_job(self, job_id: str, kind: str, user_id: str | None, now: str, *,
                         tenant: str | None = None) -> types.Job:
        return await self._write(jobs.create, job_id, kind, user_id, now, tenant)

    async def enqueue_job(self, job_id: str, kind: str, user_id: str | None, now: str, *,
                          tenant: str | None = None,
                          max_pending: int | None = None) -> types.Enqueued:
        return await self._write(jobs.enqueue, job_id, kind, user_id, now, tenant, max_pending)

    async def get_job(self, job_id: str) -> types.Job | None:
        return await self._on_writer(jobs.get, job_id)

    async def recent_jobs(self, limit: int, tenant: str | None = None) -> list[types.Job]:
        return await self._on_writer(jobs.recent, limit, tenant)

    async def job_pending(self, kind: str, user_id: str | None,
                          tenant: str | None = None) -> bool:
        return await self._on_writer(jobs.pending, kind, user_id, tenant)

    async def claim_job(self, now: str, lease_until: str) -> types.Job | None:
        return await self._write(jobs.claim, now, lease_until)

    async def checkpoint_job(self, job: types.Job, cursor: str, progress: dict[str, Any], now: str,
                             lease_until: str) -> bool:
        return await self._write(jobs.checkpoint, job, cursor, progress, now, lease_until)

    async def finish_job(self, job: types.Job, status: types.JobStatus, progress: dict[str, Any],
                         now: str, error: str | None = None) -> bool:
        return await self._write(jobs.finish, job, status, progress, now, error)

    async def next_user(self, after: str,
                        within: types.UserRange = types.EVERY_USER) -> str | None:
        return await self._on_writer(jobs.next_user, after, within)

    # -- retention --------------------------------------------------------------------------
    async def prune(self, before: types.PruneBefore) -> types.Pruned:
        counts = {"jobs": 0, "events": 0, "history": 0}
        steps = (("jobs", retention.jobs, before.jobs),
                 ("events", retention.events, before.events),
                 ("history", retention.history, before.history))
        for name, step, cutoff in steps:
            while cutoff is not None:  # one short transaction per batch: writes interleave
                done = await self._write(step, cutoff)
                counts[name] += done
                if done == 0:
                    break
        return types.Pruned(**counts)

    # -- the change feed --------------------------------------------------------------------
    @property
    def origin(self) -> str:
        return self._origin

    async def last_change(self) -> int:
        return await self._read(feed.last_change)

    async def user_change_stamp(self, user_id: str) -> int:
        return await self._read(feed.user_change_stamp, user_id)

    async def changes_since(self, after: int, limit: int) -> types.FeedPage:
        return await self._read(feed.changes_since, after, limit)

    async def wait_for_change(self, after: int, timeout_s: float) -> int:
        """A cheap poll of the newest seq (one index lookup on a reader) every
        ``feed_poll_s``: SQLite has no notifications across processes."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            last = await self.last_change()
            left = deadline - asyncio.get_running_loop().time()
            if last > after or left <= 0:
                return last
            await asyncio.sleep(min(self._feed_poll_s, left))

    async def feed_rows(self, ids: list[str]) -> dict[str, types.FeedRow]:
        return await self._read(feed.feed_rows, ids)

    async def trim_changes(self, before: float) -> int:
        return await self._write(feed.trim, before)

    # -- model versions ---------------------------------------------------------------------
    async def model_state(self, model: str) -> types.ModelState | None:
        return await self._on_writer(versions.state, model)

    async def set_active_version(self, model: str, version: str) -> None:
        await self._write(versions.set_active, model, version)

    async def adopt_versions(self, models: dict[str, str]) -> dict[str, str]:
        return await self._write(versions.adopt, models)

    async def begin_migration(self, model: str, target: str, at: str) -> bool:
        return await self._write(versions.begin, model, target, at)

    async def migration_pending(self, after_id: str, limit: int) -> list[types.PendingMemory]:
        return await self._on_writer(versions.pending, after_id, limit)

    async def put_shadow_batch(self, model: str, label: str, batch: list[types.PendingMemory],
                               vectors: np.ndarray) -> list[types.PendingMemory]:
        return await self._write(versions.put_batch, model, label, batch, vectors)

    async def shadow_vectors(self) -> list[tuple[str, str, np.ndarray]]:
        return await self._on_writer(versions.shadow_vectors)

    async def migration_progress(self) -> tuple[int, int]:
        return await self._on_writer(versions.progress)

    async def switch_version(self, model: str, target: str, label: str) -> bool:
        return await self._write(versions.switch, model, target, label)

    async def abandon_migration(self, model: str) -> None:
        await self._write(versions.abandon, model)

    # -- CLIP versions ----------------------------------------------------------------------
    async def begin_image_migration(self, model: str, target: str, at: str) -> bool:
        return await self._write(image_versions.begin, model, target, at)

    async def image_migration_pending(self, after_id: str, limit: int
                                      ) -> list[types.PendingImage]:
        return await self._on_writer(image_versions.pending, after_id, limit)

    async def put_image_shadow_batch(self, model: str, label: str, ids: list[str],
                                     vectors: np.ndarray) -> int:
        return await self._write(image_versions.put_batch, model, label, ids, vectors)

    async def image_migration_progress(self) -> tuple[int, int]:
        return await self._on_writer(image_versions.progress)

    async def switch_image_version(self, model: str, target: str, label: str) -> bool:
        return await self._write(image_versions.switch, model, target, label)

    async def abandon_image_migration(self, model: str) -> None:
        await self._write(image_versions.abandon, model)
