"""The hot tier: copies of busy partitions in accelerator memory, under a byte budget.

Three tiers hold every vector: the store (all of them, durable), CPU RAM (every partition's
matrix, rebuilt from the store) and this hot tier (the partitions searched most, on the GPU).
A partition is promoted once it has been searched ``promote_after`` times while not resident;
the least recently used ones are evicted to fit the budget. A copy is tagged with the
partition's version, so a partition changed since its upload is a miss (and re-uploaded on a
later search) rather than a wrong answer. Searches and writers may call from any thread.

``HostDevice`` is the CPU twin of ``CudaDevice`` with the same interface: tests exercise the
tier policy on it, and it is what ``MEMORY_HOT_TIER=host`` runs.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from gateway.index.view import Scorer, View

_MAX_TRACKED = 100_000


class Device(Protocol):
    name: str

    def upload(self, matrix: np.ndarray) -> object:
        """A device-resident copy of ``matrix``."""

    def scores(self, handle: object, queries: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        """Inner products of ``queries`` with the copy's ``rows`` (all when None), on host."""


class HostDevice:
    """CPU twin: 'device memory' is a separate numpy copy."""

    name = "host"

    def upload(self, matrix: np.ndarray) -> object:
        return np.array(matrix, dtype=np.float32, copy=True)

    def scores(self, handle: object, queries: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        assert isinstance(handle, np.ndarray)
        data = handle if rows is None else handle[rows]
        return queries @ data.T


class CudaDevice:
    """cupy arrays in VRAM, uploaded through pinned host memory (one DMA, no pageable copy)."""

    name = "cuda"

    def upload(self, matrix: np.ndarray) -> object:
        import cupy as cp
        import cupyx

        staging = cupyx.empty_pinned(matrix.shape, dtype=np.float32)
        staging[...] = matrix
        return cp.asarray(staging)

    def scores(self, handle: object, queries: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        import cupy as cp

        data: Any = handle if rows is None else handle[cp.asarray(rows)]  # type: ignore[index]
        return cp.asnumpy(cp.asarray(queries, dtype=cp.float32) @ data.T)


@dataclass
class TierStats:
    hits: int = 0
    misses: int = 0
    promotions: int = 0
    evictions: int = 0
    bytes: int = 0
    promotion_seconds: float = 0.0


@dataclass
class _Resident:
    handle: object
    version: int
    nbytes: int


class HotTier:
    """Thread-safe: searches ask for scorers while writers forget dropped collections.

    Its lock guards the bookkeeping only; a promotion's upload runs outside it, and a
    collection forgotten during its upload is not installed afterwards.
    """

    def __init__(self, device: Device, budget_bytes: int, *, promote_after: int = 2) -> None:
        self.device = device
        self.budget_bytes = budget_bytes
        self.promote_after = promote_after
        self.stats = TierStats()
        self._lock = threading.Lock()
        self._resident: OrderedDict[str, _Resident] = OrderedDict()  # LRU order, oldest first
        self._cold_searches: dict[str, int] = {}
        self._uploading: dict[str, object] = {}  # collection -> token of the upload under way

    def scorer(self, collection: str, view: View) -> Scorer | None:
        """Scores from the device copy if it matches ``view`` (a hit); None on a miss.

        A miss counts toward promotion; the partition is uploaded once it has missed
        ``promote_after`` times and fits the budget.
        """
        with self._lock:
            resident = self._resident.get(collection)
            if resident is not None and resident.version == view.version:
                self._resident.move_to_end(collection)
                self.stats.hits += 1
                handle = resident.handle
                return lambda queries, rows: self.device.scores(handle, queries, rows)
            self.stats.misses += 1
            if resident is not None:  # stale: the partition changed since the upload
                self._evict(collection, counted=False)
            if len(self._cold_searches) >= _MAX_TRACKED:  # millions of users: forget the counts
                self._cold_searches.clear()
            misses = self._cold_searches.get(collection, 0) + 1
            self._cold_searches[collection] = misses
            nbytes = view.used * view.dim * 4
            if misses < self.promote_after or nbytes > self.budget_bytes:
                return None  # not yet, or never fits: stays warm in RAM
            if collection in self._uploading:
                return None  # another search is promoting it
            token = self._uploading[collection] = object()
        self._promote(collection, view, nbytes, token)
        return None

    def _promote(self, collection: str, view: View, nbytes: int, token: object) -> None:
        started = time.perf_counter()
        try:
            handle = self.device.upload(view.matrix[: view.used])
        finally:
            with self._lock:
                current = self._uploading.get(collection) is token
                if current:
                    del self._uploading[collection]
        if not current:
            return  # forgotten (dropped) while uploading
        with self._lock:
            if collection in self._resident:
                self._evict(collection, counted=False)
            while self.stats.bytes + nbytes > self.budget_bytes and self._resident:
                self._evict(next(iter(self._resident)))
            self._resident[collection] = _Resident(handle, view.version, nbytes)
            self._cold_searches.pop(collection, None)
            self.stats.bytes += nbytes
            self.stats.promotions += 1
            self.stats.promotion_seconds += time.perf_counter() - started

    def _evict(self, collection: str, *, counted: bool = True) -> None:
        resident = self._resident.pop(collection)
        self.stats.bytes -= resident.nbytes
        if counted:
            self.stats.evictions += 1

    def forget(self, collection: str) -> None:
        """Drop a collection's copy and history (the collection was dropped)."""
        with self._lock:
            if collection in self._resident:
                self._evict(collection, counted=False)
            self._cold_searches.pop(collection, None)
            self._uploading.pop(collection, None)

    def resident(self) -> list[str]:
        with self._lock:
            return list(self._resident)
