"""Single writes go before searches' next heavy step.

On a saturated machine a search's steps (a query encoding, a keyword query, a vector search)
and a single add's steps (its embedding, the duplicate check, the commit, the index update)
share the cores and the interpreter lock. Measured before this gate (``make
bench-concurrency``): with 8 clients running hybrid searches, every step of an add ran 3-10x
slower and its p99 rose 4-9x. While a single write is in flight, a search about to start one
of those steps waits until no such write is left, for at most ``max_wait_s`` per step, so
searches still move on under a steady stream of writes. A step already running is not
interrupted. Batches and background jobs do not take this priority: a bulk import must not
hold every search back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class WriteFirst:
    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s  # 0: off (searches never wait)
        self._writes = 0
        self.waiting = 0  # search steps waiting now
        self._no_writes = asyncio.Event()
        self._no_writes.set()

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Hold around one foreground write."""
        self._writes += 1
        self._no_writes.clear()
        try:
            yield
        finally:
            self._writes -= 1
            if self._writes == 0:
                self._no_writes.set()

    @property
    def writes_in_flight(self) -> int:
        return self._writes

    async def before_search_step(self) -> None:
        """Wait (bounded) while a foreground write is in flight."""
        if self._writes == 0 or self.max_wait_s <= 0:
            return
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_writes.wait(), self.max_wait_s)
        finally:
            self.waiting -= 1
