"""An LRU cache of query embeddings, keyed by (tenant, model version, text).

Agents repeat queries ("what does the user prefer?") far more than they repeat memories, and a
cached query skips the Triton round trip, the slowest step of a search. The key holds the
model label, so a version switch can never serve a vector from the old space. It holds the
tenant too: a hit is faster than a miss and counted, so a cache shared by all tenants would
tell one tenant whether another had searched a text (a side channel). Tenants share the
capacity, not the entries. Entries are read-only arrays, shared by every hit. Only touched on
the event loop: no lock needed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

_Key = tuple[str, str, str]  # (tenant, model label, text)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class QueryCache:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(0, capacity)
        self.stats = CacheStats()  # every tenant's lookups (the operator's metric)
        self._per_tenant: dict[str, CacheStats] = {}
        self._entries: OrderedDict[_Key, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def tenant_stats(self, tenant: str) -> CacheStats:
        """One tenant's lookups (a copy): what its own searches met, nothing of others'."""
        found = self._per_tenant.get(tenant)
        return CacheStats() if found is None else CacheStats(found.hits, found.misses)

    def _count(self, tenant: str, hit: bool) -> None:
        own = self._per_tenant.setdefault(tenant, CacheStats())
        if hit:
            self.stats.hits += 1
            own.hits += 1
        else:
            self.stats.misses += 1
            own.misses += 1

    def get(self, tenant: str, label: str, text: str) -> np.ndarray | None:
        if not self.capacity:
            return None
        key = (tenant, label, text)
        vector = self._entries.get(key)
        self._count(tenant, vector is not None)
        if vector is not None:
            self._entries.move_to_end(key)
        return vector

    def put(self, tenant: str, label: str, text: str, vector: np.ndarray) -> None:
        if not self.capacity:
            return
        frozen = np.array(vector, dtype=np.float32, copy=True)
        frozen.flags.writeable = False
        key = (tenant, label, text)
        self._entries[key] = frozen
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
