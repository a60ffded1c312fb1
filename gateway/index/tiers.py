"""The hot tier: copies of busy partitions in accelerator memory, under a byte budget.

Three tiers hold every vector: the store (all of them, durable), CPU RAM (every partition's
matrix, rebuilt from the store) and this hot tier (the partitions searched most, on the GPU).
A partition is promoted once it has been searched ``promote_after`` times while not resident;
the least recently used ones are evicted to fit the budget. A copy is tagged with the
partition's version, so a partition changed since its upload is a miss (and re-uploaded on a
later search) rather than a wrong answer. Calls come from the engine's search thread only.

``HostDevice`` is the CPU twin of ``CudaDevice`` with the same interface: tests exercise the
tier policy on it, and it is what ``MEMORY_HOT_TIER=host`` runs.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from gateway.index.partition import Partition, Scorer

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
    def __init__(self, device: Device, budget_bytes: int, *, promote_after: int = 2) -> None:
        self.device = device
        self.budget_bytes = budget_bytes
        self.promote_after = promote_after
        self.stats = TierStats()
        self._resident: OrderedDict[str, _Resident] = OrderedDict()  # LRU order, oldest first
        self._cold_searches: dict[str, int] = {}

    def scorer(self, collection: str, partition: Partition) -> Scorer | None:
        """Scores from the device copy if it is current (a hit); None on a miss.

        A miss counts toward promotion; the partition is uploaded once it has missed
        ``promote_after`` times and fits the budget.
        """
        resident = self._resident.get(collection)
        if resident is not None and resident.version == partition.version:
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
        if misses >= self.promote_after:
            self._promote(collection, partition)
        return None

    def _promote(self, collection: str, partition: Partition) -> None:
        nbytes = partition.used * partition.dim * 4
        if nbytes > self.budget_bytes:
            return  # never fits: stays warm in RAM
        while self.stats.bytes + nbytes > self.budget_bytes and self._resident:
            self._evict(next(iter(self._resident)))
        started = time.perf_counter()
        handle = self.device.upload(partition.matrix[: partition.used])
        self.stats.promotion_seconds += time.perf_counter() - started
        self._resident[collection] = _Resident(handle, partition.version, nbytes)
        self._cold_searches.pop(collection, None)
        self.stats.bytes += nbytes
        self.stats.promotions += 1

    def _evict(self, collection: str, *, counted: bool = True) -> None:
        resident = self._resident.pop(collection)
        self.stats.bytes -= resident.nbytes
        if counted:
            self.stats.evictions += 1

    def forget(self, collection: str) -> None:
        """Drop a collection's copy and history (the collection was dropped)."""
        if collection in self._resident:
            self._evict(collection, counted=False)
        self._cold_searches.pop(collection, None)

    def resident(self) -> list[str]:
        return list(self._resident)
