"""Micro-batching: concurrent searches merge into fewer backend calls, same answers."""

from __future__ import annotations

import asyncio
import os
import threading

import numpy as np

from gateway.index.batcher import SEARCH_THREAD_NICE, SearchBatcher
from gateway.index.exact import ExactIndex


def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_concurrent_searches_share_backend_calls_and_match_direct_search() -> None:
    index = ExactIndex()
    vectors = unit_rows(2000)
    ids = [f"m{i}" for i in range(2000)]
    index.add("kb", ids, vectors)
    index.add("other", ["o1"], unit_rows(1, seed=5))
    queries = unit_rows(64, seed=1)

    async def scenario() -> tuple[list, SearchBatcher]:
        batcher = SearchBatcher(index, window_s=0.002)
        try:
            tasks = [batcher.search("kb", q, 1 + i % 10) for i, q in enumerate(queries)]
            tasks.append(batcher.search("other", queries[0], 3))
            tasks.append(batcher.search("kb", queries[0], 5, allow={"m1", "m2", "m3"}))
            return await asyncio.gather(*tasks), batcher
        finally:
            await batcher.close()

    results, batcher = asyncio.run(scenario())
    for i, q in enumerate(queries):
        direct = index.search("kb", q, 1 + i % 10)
        assert [h.id for h in results[i]] == [h.id for h in direct]
        np.testing.assert_allclose([h.score for h in results[i]], [h.score for h in direct],
                                   atol=1e-5)  # batched BLAS may round differently
    assert [h.id for h in results[64]] == ["o1"]
    assert {h.id for h in results[65]} <= {"m1", "m2", "m3"}
    assert batcher.stats.searches == 66
    assert batcher.stats.calls < 20, batcher.stats  # merged, not one call per search


def test_errors_reach_the_caller_and_the_batcher_keeps_working() -> None:
    index = ExactIndex()
    index.add("kb", ["a"], unit_rows(1))

    async def scenario() -> list:
        batcher = SearchBatcher(index)
        try:
            bad = batcher.search("kb", np.ones(3, np.float32), 1)
            outcome = await asyncio.gather(bad, return_exceptions=True)
            good = await batcher.search("kb", unit_rows(1)[0], 1)
            return [outcome[0], good]
        finally:
            await batcher.close()

    error, good = asyncio.run(scenario())
    assert isinstance(error, ValueError)
    assert [h.id for h in good] == ["a"]


def test_close_answers_queued_searches_and_later_ones_still_work() -> None:
    index = ExactIndex()
    index.add("kb", [f"m{i}" for i in range(500)], unit_rows(500))

    async def scenario() -> tuple[list, list]:
        batcher = SearchBatcher(index, window_s=0.01)
        pending = [asyncio.create_task(batcher.search("kb", q, 3)) for q in unit_rows(20, seed=2)]
        await asyncio.sleep(0)
        await batcher.close()
        late = await batcher.search("kb", unit_rows(1, seed=3)[0], 3)
        return await asyncio.gather(*pending), late

    answered, late = asyncio.run(scenario())
    assert all(len(hits) == 3 for hits in answered) and len(late) == 3


def test_searches_run_on_a_thread_below_the_process_priority() -> None:
    """Scans yield the CPU to the event loop and the writer on a saturated machine."""
    seen: list[int] = []

    class Probe(ExactIndex):
        def search_batch(self, collection, queries, k):  # type: ignore[no-untyped-def]
            seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
            return super().search_batch(collection, queries, k)

    index = Probe()
    index.add("kb", ["m1"], unit_rows(1))

    async def scenario() -> None:
        batcher = SearchBatcher(index)
        try:
            await batcher.search("kb", unit_rows(1)[0], 1)
        finally:
            await batcher.close()

    asyncio.run(scenario())
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [min(19, mine + SEARCH_THREAD_NICE)]
