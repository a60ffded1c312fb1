"""An LRU cache of query embeddings, keyed by (model version, text).

Agents repeat queries ("what does the user prefer?") far more than they repeat memories, and a
cached query skips the Triton round trip, the slowest step of a search. The key holds the
model label, so a version switch can never serve a vector from the old space. Entries are
read-only arrays, shared by every hit. Only touched on the event loop: no lock needed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np


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
        self.stats = CacheStats()
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, label: str, text: str) -> np.ndarray | None:
        if not self.capacity:
            return None
        vector = self._entries.get((label, text))
        if vector is None:
            self.stats.misses += 1
            return None
        self._entries.move_to_end((label, text))
        self.stats.hits += 1
        return vector

    def put(self, label: str, text: str, vector: np.ndarray) -> None:
        if not self.capacity:
            return
        frozen = np.array(vector, dtype=np.float32, copy=True)
        frozen.flags.writeable = False
        self._entries[(label, text)] = frozen
        self._entries.move_to_end((label, text))
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
