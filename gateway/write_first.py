"""Single writes go before searches' work.

On a saturated machine a search's steps (a query encoding, a keyword query, a vector search)
and a single add's steps (its embedding, the duplicate check, the commit, the index update)
share the cores and the interpreter lock, and an add waited behind them: with 8 clients
running hybrid searches, every step of an add ran 3-10x slower than idle (``make
bench-concurrency``). While a single write is in flight:

- a search about to start one of those steps waits until no such write is left
  (``before_search_step``, on the event loop);
- a keyword query already running pauses at its next SQLite progress callback
  (``pause_thread``, on the store's keyword threads), so a long query does not hold the cores
  for the write's whole duration.

Each search step waits at most ``max_wait_s`` in all, so searches still move on under a
steady stream of writes. Batches and background jobs do not take this priority: a bulk
import must not hold every search back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator


class WriteFirst:
    def __init__(self, max_wait_s: float) -> None:
        self.max_wait_s = max_wait_s  # 0: off (searches never wait)
        self._writes = 0  # changed on the event loop only
        self._no_writes = asyncio.Event()
        self._no_writes.set()
        self._no_writes_thread = threading.Event()  # the same, for the store's threads
        self._no_writes_thread.set()
        self._local = threading.local()  # a thread's wait left in its current step
        self._waiting_lock = threading.Lock()
        self.waiting = 0  # search steps (on the loop or a thread) waiting now

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Hold around one foreground write."""
        self._writes += 1
        self._no_writes.clear()
        self._no_writes_thread.clear()
        try:
            yield
        finally:
            self._writes -= 1
            if self._writes == 0:
                self._no_writes_thread.set()
                self._no_writes.set()

    @property
    def writes_in_flight(self) -> int:
        return self._writes

    def _count_waiting(self, delta: int) -> None:
        with self._waiting_lock:
            self.waiting += delta

    async def before_search_step(self) -> None:
        """On the event loop: wait (bounded) while a foreground write is in flight."""
        if self._writes == 0 or self.max_wait_s <= 0:
            return
        self._count_waiting(1)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_writes.wait(), self.max_wait_s)
        finally:
            self._count_waiting(-1)

    def begin_thread_step(self) -> None:
        """On a worker thread, before a search step: it may pause up to ``max_wait_s``."""
        self._local.left = self.max_wait_s

    def pause_thread(self) -> int:
        """On a worker thread inside a search step (a SQLite progress handler): sleep while a
        foreground write is in flight, within what is left of the step's wait. Returns 0
        (SQLite: go on)."""
        left = getattr(self._local, "left", 0.0)
        if self._writes == 0 or left <= 0:
            return 0
        self._count_waiting(1)
        began = time.monotonic()
        try:
            self._no_writes_thread.wait(left)
        finally:
            self._count_waiting(-1)
            self._local.left = left - (time.monotonic() - began)
        return 0
