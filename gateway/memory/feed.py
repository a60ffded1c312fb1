"""A replica's follower of the store's change feed: other gateways' writes reach this index.

Each gateway's vector index is a cache of the shared store. This gateway's own writes enter
its index at once (the service mirrors them under its mutation lock: read-your-writes); what
other gateways commit arrives here through the feed (``gateway.store.base.ChangeFeed``):

- the follower starts at the newest seq read *before* the index is loaded from the store, so
  nothing committed during the load is lost (a change applied twice is harmless: it is
  applied as the store's current state, not as a delta);
- it waits for news (``wait_for_change``: LISTEN/NOTIFY on PostgreSQL, a cheap poll on
  SQLite, each bounded by ``wait_s`` so a missed notification costs at most that), reads the
  changes since its position in pages, skips its own, and brings its indexes in step under
  the service's mutation lock: the rows named are read from the store as they are now, a
  live one (re)enters its partition, an archived or absent one leaves it, a deleted user's
  partition is dropped, and a model-version change is handed to ``on_version``;
- a partition this replica does not hold in RAM (evicted under a RAM budget) is left alone:
  it is reloaded from the store on its next search;
- a position the feed has trimmed past (a replica away longer than the retention) means a
  reload of the whole index from the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from gateway.index.base import VectorIndex
from gateway.memory.service import MemoryService
from gateway.metrics import Metrics
from gateway.store.base import ChangeFeed
from gateway.store.types import FeedChange, FeedRow

log = logging.getLogger("gateway.feed")
TRIM_EVERY_S = 600.0  # how often a follower trims the log past the retention
RETRY_S = 1.0  # after a failed read of the feed (the store away): try again this much later


@dataclass(slots=True)
class FeedStats:
    applied_seq: int = 0  # the last seq applied (or skipped as this replica's own)
    applied: int = 0  # other replicas' changes applied
    skipped: int = 0  # this replica's own changes, mirrored when they were written
    reloads: int = 0


class FeedFollower:
    """Follows the change feed into one memory service's indexes."""

    def __init__(self, service: MemoryService, feed: ChangeFeed, *,
                 on_version: Callable[[], Awaitable[None]] | None = None,
                 metrics: Metrics | None = None, batch: int = 500, wait_s: float = 1.0,
                 retention_s: float = 86_400.0) -> None:
        self.service, self.feed = service, feed
        self.on_version = on_version
        self.metrics = metrics
        self.batch, self.wait_s, self.retention_s = batch, wait_s, retention_s
        self.stats = FeedStats()
        self._last_trim = 0.0

    async def mark(self) -> int:
        """Take the newest seq as the position: call before the index is loaded."""
        self.stats.applied_seq = await self.feed.last_change()
        self._export(self.stats.applied_seq, None)
        return self.stats.applied_seq

    async def follow_forever(self) -> None:
        """Apply news as it comes; a failing store is retried, never fatal."""
        while True:
            try:
                await self.feed.wait_for_change(self.stats.applied_seq, self.wait_s)
                await self.catch_up()
                await self._trim()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store away or failing: the feed stays the truth, retry
                log.exception("change feed: cannot follow; retrying in %.1f s", RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def catch_up(self) -> int:
        """Apply every change committed so far; returns how many were read."""
        read = 0
        while True:
            page = await self.feed.changes_since(self.stats.applied_seq, self.batch)
            if page.missed:
                await self.reload()
                continue
            if not page.changes:
                self._export(await self.feed.last_change(), None)
                return read
            await self._apply(page.changes)
            read += len(page.changes)
            last = await self.feed.last_change()
            pending = last > self.stats.applied_seq
            self._export(last, time.time() - page.changes[-1].at if pending else None)

    async def reload(self) -> None:
        """Load the index again from the store (the feed no longer reaches back far enough)."""
        log.warning("change feed trimmed past seq %d: reloading the index from the store",
                     self.stats.applied_seq)
        async with self.service.exclusive():
            mark = await self.feed.last_change()
            await self.service.build_index()
            self.stats.applied_seq = mark
        self.stats.reloads += 1
        if self.metrics is not None:
            self.metrics.feed_reloads.inc()

    # -- applying -----------------------------------------------------------------------------
    async def _apply(self, changes: list[FeedChange]) -> None:
        """In order; memory changes between two user or version changes go as one read."""
        rows: list[FeedChange] = []
        for change in changes:
            if change.origin == self.feed.origin:
                self.stats.skipped += 1
            elif change.kind in ("user", "version"):
                await self._apply_rows(rows)
                rows = []
                if change.kind == "user":
                    await self._drop_user(change.user_id)
                elif self.on_version is not None:
                    await self.on_version()
                self.stats.applied += 1
            else:
                rows.append(change)
        await self._apply_rows(rows)
        self.stats.applied_seq = changes[-1].seq  # a page cut short is read again: idempotent

    async def _drop_user(self, user_id: str | None) -> None:
        if user_id is None:
            return
        async with self.service.exclusive():
            for index in self.service.models.indexes():
                await asyncio.to_thread(index.drop, user_id)

    async def _apply_rows(self, changes: list[FeedChange]) -> None:
        if not changes:
            return
        users = {c.memory_id: c.user_id for c in changes if c.memory_id and c.user_id}
        async with self.service.exclusive():  # no local write commits between read and apply
            stored = await self.feed.feed_rows(list(users))
            models = self.service.models
            active = models.active
            await asyncio.to_thread(
                _bring_in_step, models.index, None if active is None else active.info.label,
                users, stored, shadow=False)
            if models.target is not None:
                await asyncio.to_thread(
                    _bring_in_step, models.target.index, models.target.info.label, users,
                    stored, shadow=True)
        self.stats.applied += len(changes)

    # -- upkeep ---------------------------------------------------------------------------------
    async def _trim(self) -> None:
        now = time.time()
        if now - self._last_trim >= TRIM_EVERY_S:
            self._last_trim = now
            await self.feed.trim_changes(now - self.retention_s)

    def _export(self, last: int, lag_s: float | None) -> None:
        if self.metrics is None:
            return
        self.metrics.feed_applied_seq.set(self.stats.applied_seq)
        self.metrics.feed_lag_changes.set(max(0, last - self.stats.applied_seq))
        self.metrics.feed_lag_seconds.set(max(0.0, lag_s or 0.0))


def _bring_in_step(index: VectorIndex, label: str | None, users: dict[str, str],
                   stored: dict[str, FeedRow], *, shadow: bool) -> None:
    """Make ``index`` hold each named memory as stored now (on a worker thread).

    The active index takes a row's vector when its label is the active one (``label`` None:
    no version pinned yet, the store's vectors are the active space's); a migration target
    takes the row's shadow vector in its own space.
    """
    add: dict[str, tuple[list[str], list[np.ndarray]]] = {}
    remove: dict[str, list[str]] = {}
    for memory_id, user in users.items():
        row = stored.get(memory_id)
        if index.needs_load(row.user_id if row else user):
            continue  # not held here: its next search reloads it from the store
        vector = None
        if row is not None and not row.archived:
            if shadow:
                vector = row.shadow[1] if row.shadow and row.shadow[0] == label else None
            elif label is None or row.label == label:
                vector = row.vector
        if vector is None:
            remove.setdefault(row.user_id if row else user, []).append(memory_id)
        else:
            ids, vectors = add.setdefault(row.user_id if row else user, ([], []))
            ids.append(memory_id)
            vectors.append(vector)
    for user, gone in remove.items():
        index.remove(user, gone)
    for user, (ids, vectors) in add.items():
        index.add(user, ids, np.stack(vectors).astype(np.float32, copy=False))
