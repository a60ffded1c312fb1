"""A gateway's copy of each user's image vectors, checked against the change log per search.

Text search has the in-process vector index; a search over pictures read all of the user's
CLIP vectors from the store every time, a cost that grows with the user's pictures (one
image-bearing search at 2,000 pictures read 2,000 rows). This cache keeps them per (user,
CLIP space) within a byte budget, least recently used out first.

Before each use it reads the user's change stamp (``Store.user_change_stamp``, one indexed
lookup): any committed add, delete, edit, archive or restore of the user's memories, by this
gateway or another replica on the same store, moves the stamp, and the copy is read again.
The stamp is read *before* the vectors, so a write landing between the two leaves a copy
tagged older than its contents: read again next time, never served stale. A CLIP version
switch changes the space, and the copies of the old one are dropped.

What a search may see is applied per search: expired pictures are left out by the user's
expired ids (``Store.expired_ids``); a search with other filters (agent, run, metadata,
dates), or whose user has more expired memories than ``MAX_SKIPPED_EXPIRED``, reads the
store as before.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

from gateway.domain.model import SearchFilters
from gateway.memory.search import MAX_SKIPPED_EXPIRED
from gateway.metrics import Metrics
from gateway.store.base import Store

Vectors = tuple[list[str], np.ndarray]


@dataclass(frozen=True, slots=True)
class _Copy:
    stamp: int  # the user's change stamp read before the vectors
    ids: list[str]
    matrix: np.ndarray
    nbytes: int


class ImageVectorCache:
    """``vectors`` answers as ``Store.image_vectors`` does, from memory where it can."""

    def __init__(self, store: Store, budget_bytes: int, metrics: Metrics | None = None) -> None:
        self.store, self.budget, self.metrics = store, budget_bytes, metrics
        self._copies: OrderedDict[tuple[str, str], _Copy] = OrderedDict()
        self._held = 0  # bytes of the copies
        self._space: str | None = None  # the CLIP space of the copies

    @property
    def held_bytes(self) -> int:
        return self._held

    async def vectors(self, user_id: str, label: str, filters: SearchFilters) -> Vectors:
        """The user's unarchived image memories that ``filters`` let through, with their
        vectors of space ``label``, ids in id order."""
        if self.budget <= 0 or not filters.empty:
            return await self._bypass(user_id, label, filters)
        expired: set[str] | None = set()
        known = self._copies.get((user_id, label))
        if known is not None and known.ids:  # pictures to filter, likely still: both at once
            stamp, expired = await asyncio.gather(self.store.user_change_stamp(user_id),
                                                  self._expired(user_id, filters.live_at))
            if expired is None:  # too many to leave out one by one: the store filters
                return await self._bypass(user_id, label, filters)
        else:  # most users have no pictures: one read, as before the cache
            stamp, known = await self.store.user_change_stamp(user_id), None
        copy, outcome = self._get(user_id, label, stamp), "hit"
        if copy is None:
            ids, matrix = await self.store.image_vectors(user_id, label,
                                                         replace(filters, live_at=None))
            matrix.flags.writeable = False  # shared by every search that reuses the copy
            copy, outcome = _Copy(stamp, ids, matrix, matrix.nbytes + 64 * len(ids)), "filled"
            self._put(user_id, label, copy)
        if copy.ids and known is None:  # pictures, and their expiry not read above
            expired = await self._expired(user_id, filters.live_at)
        if expired is None:  # too many to leave out one by one: the store filters
            return await self._bypass(user_id, label, filters)
        self._count(outcome)
        if not expired:
            return copy.ids, copy.matrix
        # a pass over every picture and a copy of the kept rows: off the event loop, as the
        # cosines are
        return await asyncio.to_thread(_unexpired, copy, expired)

    async def _bypass(self, user_id: str, label: str, filters: SearchFilters) -> Vectors:
        self._count("bypassed")
        return await self.store.image_vectors(user_id, label, filters)

    async def _expired(self, user_id: str, live_at: str | None) -> set[str] | None:
        """The user's memories expired at ``live_at`` (none asked: none); None when more
        than ``MAX_SKIPPED_EXPIRED``."""
        if live_at is None:
            return set()
        found = await self.store.expired_ids(user_id, live_at, MAX_SKIPPED_EXPIRED + 1)
        return None if len(found) > MAX_SKIPPED_EXPIRED else found

    # _get and _put run on the event loop without awaiting: no lock needed.
    def _get(self, user_id: str, label: str, stamp: int) -> _Copy | None:
        copy = self._copies.get((user_id, label))
        if copy is None or copy.stamp != stamp:
            return None
        self._copies.move_to_end((user_id, label))
        return copy

    def _put(self, user_id: str, label: str, copy: _Copy) -> None:
        if label != self._space:  # a CLIP switch: the old space's copies are of no use
            self._copies.clear()
            self._held, self._space = 0, label
        old = self._copies.pop((user_id, label), None)
        if old is not None:
            self._held -= old.nbytes
        if copy.nbytes > self.budget:
            return
        self._copies[(user_id, label)] = copy
        self._held += copy.nbytes
        while self._held > self.budget:
            _, dropped = self._copies.popitem(last=False)
            self._held -= dropped.nbytes

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.image_cache.labels(outcome).inc()


def _unexpired(copy: _Copy, expired: set[str]) -> Vectors:
    """The copy's pictures but the ``expired`` ones."""
    keep = [n for n, key in enumerate(copy.ids) if key not in expired]
    if not keep:
        return [], np.zeros((0, 0), dtype=np.float32)
    return [copy.ids[n] for n in keep], np.take(copy.matrix, keep, axis=0)
