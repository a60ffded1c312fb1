"""The warm tier's bookkeeping: which partitions stay in RAM under a byte budget.

With a budget, RAM holds the most recently used partitions and the store holds all of them:
a partition evicted here is reloaded from the store by the service on its next search (see
``MemoryService._ensure_loaded``). Without a budget every partition stays in RAM.
"""

from __future__ import annotations

from collections import OrderedDict


class RamBudget:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.total = 0
        self.evictions = 0
        self.loads = 0
        self._sizes: OrderedDict[str, int] = OrderedDict()  # LRU order, oldest first

    def touch(self, collection: str, nbytes: int | None = None) -> list[str]:
        """Mark ``collection`` used (with its current size); returns the ones to evict."""
        if nbytes is not None:
            self.total += nbytes - self._sizes.get(collection, 0)
            self._sizes[collection] = nbytes
        if collection in self._sizes:
            self._sizes.move_to_end(collection)
        victims = []
        for oldest in list(self._sizes):
            if self.total <= self.budget_bytes:
                break
            if oldest != collection:
                victims.append(oldest)
                self.forget(oldest)
                self.evictions += 1
        return victims

    def forget(self, collection: str) -> None:
        self.total -= self._sizes.pop(collection, 0)
