"""The PostgreSQL store: the ``gateway.store.base.Store`` protocol on psycopg 3's async pool.

One operation is one transaction on one pooled connection (committed when the operation
returns, rolled back when it raises): a write returns once it has committed, and the memory
row, its vector, its lexical document and its history move together, as in SQLite. Writes
are not serialised through one connection as SQLite's are: concurrent writers (threads or
replicas) are kept apart by the same generation checks (``updated_at``), row locks and, for
the job queue, ``SKIP LOCKED`` claims and an advisory lock. The SQL lives in one module per
concept, as in the SQLite backend; the pool runs on the store's own loop (``loop``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
import psycopg
from psycopg import errors
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gateway.domain.model import (
    HistoryEvent,
    Memory,
    SearchFilters,
    StoredImage,
    StoredMemory,
)
from gateway.store import types
from gateway.store.postgres import (
    archive,
    census,
    erasure,
    events,
    feed,
    image_versions,
    images,
    ingest,
    jobs,
    lexical,
    memories,
    postings,
    retention,
    versions,
)
from gateway.store.postgres.faults import map_postgres_errors
from gateway.store.postgres.loop import LoopThread
from gateway.store.postgres.migrations import migrate
from gateway.store.postgres.rows import Conn

T = TypeVar("T")
POOL_MIN, POOL_MAX = 1, 10
CONNECT_WAIT_S = 5.0  # how long an operation waits for a pooled connection before a 503
# The pool retries a lost connection with doubling pauses (1, 2, 4, 8 s...) until this
# long has passed, then gives the slot up; the next request asks for a fresh one at once.
# Kept under CONNECT_WAIT_S so that once PostgreSQL is back, a request never waits out a
# long pause scheduled during the outage (which gave it a 503 after a long outage).
RECONNECT_GIVE_UP_S = 4.0


def redacted(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


class PostgresStore:
    """Async store over one PostgreSQL database (``MEMORY_STORE_URL``)."""

    def __init__(self, url: str, *, lexical_index: bool = True, pool_min: int = POOL_MIN,
                 pool_max: int = POOL_MAX, connect_wait_s: float = CONNECT_WAIT_S) -> None:
        self.url = url
        # No file: ``path`` names the database for messages (the in-use lock is SQLite's).
        self.path = Path(redacted(url))
        self.lexical_index = lexical_index
        self._pool_min, self._pool_max = pool_min, pool_max
        self._connect_wait_s = connect_wait_s
        self._loop: LoopThread | None = None
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._lexicon = lexical.Lexicon()
        # This instance's name in the change log: a replica skips its own changes.
        self._origin = uuid.uuid4().hex
        self._listener = feed.Listener(url)  # LISTEN for the change feed, opened on first wait

    # -- plumbing ---------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def pool(self) -> AsyncConnectionPool[Conn]:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    async def _on_connection(self, func: Callable[..., Awaitable[T]], args: tuple[Any, ...],
                             write: bool) -> T:
        """``func`` on a pooled connection: in a transaction committed when it returns
        (``write``), else statement by statement (autocommit: no BEGIN and COMMIT round
        trips for a read). A pooled connection
        the server dropped (a restart) fails on its first statement, before anything was
        committed: the operation runs again on the next connection, so the first request
        after PostgreSQL comes back succeeds (cheaper than checking every connection on
        checkout, a round trip per operation)."""
        # Every pooled connection may be dead after a restart: one more try per connection
        # the pool can hold, each broken one discarded, then a fresh one.
        attempts = self._pool_max + 1
        for attempt in range(1, attempts + 1):
            async with self.pool.connection() as conn:
                try:
                    if not write:  # one statement (or several needing no snapshot): autocommit
                        return await func(conn, *args)
                    async with conn.transaction():  # commits on return, rolls back on raise
                        return await func(conn, *args)
                except psycopg.OperationalError:
                    if attempt == attempts or not conn.broken:
                        raise
            # the broken connection went back to the pool, which discards it
        raise AssertionError("unreachable")

    async def _run(self, func: Callable[..., Awaitable[T]], *args: Any,
                   write: bool = True) -> T:
        """``func(conn, *args)`` in one transaction on a pooled connection."""
        if self._loop is None or self._pool is None:
            raise RuntimeError("store is not open")
        with map_postgres_errors():
            return await self._loop.call(self._on_connection(func, args, write))

    async def _read(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``func(conn, *args)``, read-only, outside a transaction on a pooled connection."""
        return await self._run(func, *args, write=False)

    async def _write(self, func: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A write that keeps the lexical index: ``func(conn, lexicon, *args)``."""
        return await self._run(func, self._lexicon, *args)

    async def _open(self) -> int:
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url, min_size=self._pool_min, max_size=self._pool_max, open=False,
            kwargs={"row_factory": dict_row, "connect_timeout": 10, "autocommit": True,
                    "options": feed.connect_options(self._origin)},
            timeout=self._connect_wait_s, reconnect_timeout=RECONNECT_GIVE_UP_S,
            name="memory-store")
        await pool.open(wait=True, timeout=30)
        try:
            async with pool.connection() as conn:
                version = await migrate(conn)
            async with pool.connection() as conn, conn.transaction():
                await self._lexicon.load(conn)
                await lexical.maintain(conn, self._lexicon, self.lexical_index)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        return version

    async def open(self) -> int:
        """Connect, apply pending migrations; returns the schema version."""
        self._loop = LoopThread("postgres-store")
        try:
            with map_postgres_errors():
                return await self._loop.call(self._open())
        except BaseException:
            self._loop.stop()
            self._loop = None
            raise

    async def close(self) -> None:
        if self._loop is None:
            return
        await self._loop.call(self._listener.close())
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await self._loop.call(pool.close())
        self._loop.stop()
        self._loop = None

    # -- memories ---------------------------------------------------------------------------
    async def insert_many(self, items: list[StoredMemory],
                          shadows: list[types.ShadowVector] | None = None) -> None:
        try:
            await self._write(feed.locked(memories.insert_rows), items, shadows)
        except errors.UniqueViolation as exc:  # the transaction was rolled back
            raise types.RowConflict(str(exc)) from exc

    async def update(self, updated: StoredMemory | Memory, previous: Memory,
                     shadow: types.ShadowVector | None = None) -> bool:
        return await self._write(feed.locked(memories.update_row), updated, previous, shadow)

    async def delete(self, memory_id: str, at: str) -> tuple[Memory, list[StoredMemory]] | None:
        return await self._run(feed.locked(memories.delete_one), memory_id, at)

    async def delete_user(self, user_id: str, at: str) -> list[str]:
        return await self._run(feed.locked(memories.delete_user), user_id, at)

    async def erase(self, memory_id: str, at: str) -> types.Erased | None:
        return await self._run(feed.locked(erasure.erase_one), memory_id, at)

    async def erase_user(self, user_id: str) -> list[str]:
        return await self._run(feed.locked(erasure.erase_user), user_id)

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
        if not self._lexicon.maintained:
            return []
        return await self._read(partial(
            postings.keyword_search, date_weight=date_weight, archived=archived,
            context_weight=context_weight), self._lexicon, user_id, query, k, filters)

    async def keyword_memories(
        self, user_id: str, query: str, k: int, filters: SearchFilters, *,
        date_weight: float = 1.0, archived: bool = False,
        context_weight: float = types.CONTEXT_WEIGHT,
    ) -> list[tuple[Memory, float]]:
        if not self._lexicon.maintained:
            return []
        return await self._read(partial(
            postings.keyword_memories, date_weight=date_weight, archived=archived,
            context_weight=context_weight), self._lexicon, user_id, query, k, filters)

    async def embeddings(self, ids: list[str]) -> dict[str, tuple[str, np.ndarray]]:
        return await self._read(memories.embeddings, ids)

    async def existing_ids(self, ids: list[str]) -> set[str]:
        return await self._read(memories.existing_ids, ids)

    async def count(self) -> int:
        return await self._read(memories.count)

    async def user_vectors(self, user_id: str) -> tuple[list[str], np.ndarray]:
        return await self._read(memories.user_vectors, user_id)

    async def image(self, memory_id: str) -> StoredImage | None:
        return await self._read(images.get, memory_id)

    async def image_vectors(self, user_id: str, model: str, filters: SearchFilters
                            ) -> tuple[list[str], np.ndarray]:
        return await self._read(images.vectors, user_id, model, filters)

    async def vectors(self, batch: int = 5000) -> list[tuple[str, str, np.ndarray]]:
        return await self._run(memories.vectors, batch)

    # -- ingest and archive -----------------------------------------------------------------
    async def exact_matches(self, queries: list[types.ExactQuery], live_at: str
                            ) -> list[Memory | None]:
        return await self._read(ingest.exact_matches, queries, live_at)

    async def apply(self, plan: types.WritePlan) -> None:
        try:
            await self._write(feed.locked(ingest.apply), plan)
        except errors.UniqueViolation as exc:
            raise types.RowConflict(str(exc)) from exc

    async def fold(self, folds: list[types.Fold], at: str) -> None:
        await self._write(feed.locked(archive.fold), folds, at)

    async def compressible(self, user_id: str, max_priority: int, live_at: str, *,
                           after: str = "", limit: int = -1) -> list[StoredMemory]:
        return await self._read(archive.compressible, user_id, max_priority, live_at, after,
                               limit)

    async def archived_vectors(self, user_id: str, filters: SearchFilters
                               ) -> list[tuple[str, str, np.ndarray]]:
        return await self._read(archive.archived_vectors, user_id, filters)

    async def delete_expired(self, user_id: str, at: str
                             ) -> tuple[list[Memory], list[StoredMemory]]:
        return await self._run(feed.locked(archive.delete_expired), user_id, at)

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
        await self._run(events.create, event_id, user_id, request, now, next_attempt,
                        attempts, error)

    async def get_event(self, event_id: str) -> types.IngestEvent | None:
        return await self._read(events.get, event_id)

    async def claim_event(self, now: str) -> types.IngestEvent | None:
        return await self._run(events.claim_due, now)

    async def next_event_due(self) -> str | None:
        return await self._read(events.next_due)

    async def save_event(self, event_id: str, status: types.EventStatus, now: str, *,
                         result: dict[str, Any] | None = None, error: str | None = None,
                         attempts: int | None = None, next_attempt: str | None = None) -> None:
        await self._run(events.save, event_id, status, now, result, error, attempts,
                        next_attempt)

    async def recover_events(self, now: str) -> int:
        return await self._run(events.recover, now)

    # -- jobs -------------------------------------------------------------------------------
    async def create_job(self, job_id: str, kind: str, user_id: str | None, now: str, *,
                         tenant: str | None = None) -> types.Job:
        return await self._run(jobs.create, job_id, kind, user_id, now, tenant)

    async def enqueue_job(self, job_id: str, kind: str, user_id: str | None, now: str, *,
                          tenant: str | None = None,
                          max_pending: int | None = None) -> types.Enqueued:
        return await self._run(jobs.enqueue, job_id, kind, user_id, now, tenant, max_pending)

    async def get_job(self, job_id: str) -> types.Job | None:
        return await self._read(jobs.get, job_id)

    async def recent_jobs(self, limit: int, tenant: str | None = None) -> list[types.Job]:
        return await self._read(jobs.recent, limit, tenant)

    async def job_pending(self, kind: str, user_id: str | None,
                          tenant: str | None = None) -> bool:
        return await self._read(jobs.pending, kind, user_id, tenant)

    async def claim_job(self, now: str, lease_until: str) -> types.Job | None:
        return await self._run(jobs.claim, now, lease_until)

    async def checkpoint_job(self, job: types.Job, cursor: str, progress: dict[str, Any],
                             now: str, lease_until: str) -> bool:
        return await self._run(jobs.checkpoint, job, cursor, progress, now, lease_until)

    async def finish_job(self, job: types.Job, status: types.JobStatus,
                         progress: dict[str, Any], now: str, error: str | None = None) -> bool:
        return await self._run(jobs.finish, job, status, progress, now, error)

    async def next_user(self, after: str,
                        within: types.UserRange = types.EVERY_USER) -> str | None:
        return await self._read(jobs.next_user, after, within)

    # -- retention --------------------------------------------------------------------------
    async def prune(self, before: types.PruneBefore) -> types.Pruned:
        counts = {"jobs": 0, "events": 0, "history": 0}
        steps = (("jobs", retention.jobs, before.jobs),
                 ("events", retention.events, before.events),
                 ("history", retention.history, before.history))
        for name, step, cutoff in steps:
            while cutoff is not None:  # one short transaction per batch
                done = await self._run(step, cutoff)
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
        return await self._run(feed.changes_since, after, limit)

    async def wait_for_change(self, after: int, timeout_s: float) -> int:
        """``LISTEN`` first, then read the table (the truth), then wait for a notification:
        a change committed between the two is either read or notified."""
        if self._loop is None:
            raise RuntimeError("store is not open")
        with map_postgres_errors():
            await self._loop.call(self._listener.ensure())
        last = await self.last_change()
        if last > after:
            return last
        with map_postgres_errors():
            await self._loop.call(self._listener.wait(after, timeout_s))
        return await self.last_change()

    async def feed_rows(self, ids: list[str]) -> dict[str, types.FeedRow]:
        return await self._read(feed.feed_rows, ids)

    async def trim_changes(self, before: float) -> int:
        return await self._run(feed.trim, before)

    # -- model versions ---------------------------------------------------------------------
    async def model_state(self, model: str) -> types.ModelState | None:
        return await self._read(versions.state, model)

    async def set_active_version(self, model: str, version: str) -> None:
        await self._run(feed.locked(versions.set_active), model, version)

    async def adopt_versions(self, models: dict[str, str]) -> dict[str, str]:
        return await self._run(feed.locked(versions.adopt), models)

    async def begin_migration(self, model: str, target: str, at: str) -> bool:
        return await self._run(feed.locked(versions.begin), model, target, at)

    async def migration_pending(self, after_id: str, limit: int) -> list[types.PendingMemory]:
        return await self._read(versions.pending, after_id, limit)

    async def put_shadow_batch(self, model: str, label: str, batch: list[types.PendingMemory],
                               vectors: np.ndarray) -> list[types.PendingMemory]:
        return await self._run(feed.locked(versions.put_batch), model, label, batch, vectors)

    async def shadow_vectors(self) -> list[tuple[str, str, np.ndarray]]:
        return await self._read(versions.shadow_vectors)

    async def migration_progress(self) -> tuple[int, int]:
        return await self._read(versions.progress)

    async def switch_version(self, model: str, target: str, label: str) -> bool:
        return await self._run(feed.locked(versions.switch), model, target, label)

    async def abandon_migration(self, model: str) -> None:
        await self._run(feed.locked(versions.abandon), model)

    # -- CLIP versions ----------------------------------------------------------------------
    async def begin_image_migration(self, model: str, target: str, at: str) -> bool:
        return await self._run(feed.locked(image_versions.begin), model, target, at)

    async def image_migration_pending(self, after_id: str, limit: int
                                      ) -> list[types.PendingImage]:
        return await self._read(image_versions.pending, after_id, limit)

    async def put_image_shadow_batch(self, model: str, label: str, ids: list[str],
                                     vectors: np.ndarray) -> int:
        return await self._run(feed.locked(image_versions.put_batch), model, label, ids, vectors)

    async def image_migration_progress(self) -> tuple[int, int]:
        return await self._read(image_versions.progress)

    async def switch_image_version(self, model: str, target: str, label: str) -> bool:
        return await self._run(feed.locked(image_versions.switch), model, target, label)

    async def abandon_image_migration(self, model: str) -> None:
        await self._run(feed.locked(image_versions.abandon), model)
