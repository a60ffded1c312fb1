"""Query micro-batching: concurrent searches on one collection become one backend call.

One worker thread owns the backend (on a GPU, one thread must own the device), so searches
queue for it. While a batch runs, new searches gather; the next batch takes all of them at
once: one matrix product, or one graph/kernel launch, instead of many. When the engine is idle
a search goes straight through, so a lone client pays no window. Under load (the previous
batch held several searches) a lone search waits at most ``window_s`` for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from gateway.index.base import Hit, VectorIndex
from gateway.threads import lower_thread_priority

# The search thread's nice value, above the process's: a scan of a huge user is the one
# long-running CPU job in the gateway, and on a saturated machine the event loop, the store's
# writer and Triton should get the CPU first, so small writes do not wait behind scans.
SEARCH_THREAD_NICE = 5


@dataclass
class _Search:
    collection: str
    query: np.ndarray
    k: int
    allow: Collection[str] | None
    future: asyncio.Future[list[Hit]] = field(repr=False)


@dataclass
class BatcherStats:
    searches: int = 0
    calls: int = 0
    largest: int = 0

    @property
    def mean_batch(self) -> float:
        return self.searches / self.calls if self.calls else 0.0


class SearchBatcher:
    def __init__(
        self, index: VectorIndex, *, window_s: float = 0.001, max_batch: int = 256
    ) -> None:
        self.index = index
        self.window_s = window_s
        self.max_batch = max_batch
        self.stats = BatcherStats()
        self._queue: asyncio.Queue[_Search] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="search",
                                          initializer=functools.partial(
                                              lower_thread_priority, SEARCH_THREAD_NICE))
        self._last_batch = 1
        self._closed = False
        self._busy = False

    async def search(
        self, collection: str, query: np.ndarray, k: int, *, allow: Collection[str] | None = None
    ) -> list[Hit]:
        if self._closed:  # a search that picked this engine before it was retired
            return await asyncio.to_thread(self.index.search, collection, query, k, allow=allow)
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run(), name="search-batcher")
        future: asyncio.Future[list[Hit]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Search(collection, np.asarray(query, np.float32), k, allow, future))
        return await future

    async def close(self) -> None:
        """Answer what is queued, then stop; later searches run directly on a thread."""
        self._closed = True
        if self._worker is not None and self._queue is not None:
            while not self._queue.empty() or self._busy:
                await asyncio.sleep(0.005)
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._thread.shutdown(wait=True)

    async def _gather(self) -> list[_Search]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        self._busy = True  # from here until answered, close() must wait for this batch
        deadline = time.monotonic() + (self.window_s if self._last_batch > 1 else 0.0)
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            self._last_batch = len(batch)
            try:
                results = await loop.run_in_executor(self._thread, self._execute, batch)
            except Exception as exc:  # delivered to every waiting caller
                for search in batch:
                    if not search.future.done():
                        search.future.set_exception(exc)
                continue
            finally:
                self._busy = False
            for search, hits in zip(batch, results, strict=True):
                if not search.future.done():
                    search.future.set_result(hits)

    def _execute(self, batch: list[_Search]) -> list[list[Hit]]:
        """On the search thread: one backend call per collection among unfiltered searches."""
        results: list[list[Hit] | None] = [None] * len(batch)
        groups: dict[str, list[int]] = {}
        for position, search in enumerate(batch):
            if search.allow is None:
                groups.setdefault(search.collection, []).append(position)
            else:  # a filter is per search: no sharing
                results[position] = self.index.search(
                    search.collection, search.query, search.k, allow=search.allow)
        for collection, positions in groups.items():
            queries = np.stack([batch[p].query for p in positions])
            k = max(batch[p].k for p in positions)
            for position, hits in zip(
                positions, self.index.search_batch(collection, queries, k), strict=True
            ):
                results[position] = hits[: batch[position].k]
        self.stats.searches += len(batch)
        self.stats.calls += len(groups) + sum(1 for s in batch if s.allow is not None)
        self.stats.largest = max(self.stats.largest, len(batch))
        return [hits if hits is not None else [] for hits in results]
