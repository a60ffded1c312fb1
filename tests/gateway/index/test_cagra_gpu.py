"""CAGRA and cupy-exact graphs on a real GPU (run with `pytest -m gpu` where one is visible)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.index.exact import ExactIndex
from gateway.index.factory import gpu_available
from gateway.index.partitioned import AnnPolicy, PartitionedIndex, held_out_queries

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_available(), reason="no CUDA device with cupy + cuVS visible"),
]


def clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    rows = centres[rng.integers(0, 50, n)] + 0.6 * rng.standard_normal((n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("min_rows", [1_000_000, 10_000])  # cupy exact, then CAGRA
def test_gpu_graph_recall_and_filters(min_rows: int) -> None:
    from gateway.index.cagra import CagraBuilder

    vectors = clustered(50_000)
    ids = [f"m{i}" for i in range(len(vectors))]
    index = PartitionedIndex(CagraBuilder(min_rows=min_rows), AnnPolicy(threshold=20_000),
                             background=False)
    reference = ExactIndex()
    index.add("kb", ids, vectors)
    reference.add("kb", ids, vectors)
    assert index.stats().graphs == 1
    queries = held_out_queries(vectors, 100, seed=3)
    found = index.search_batch("kb", queries, 10)
    truth = reference.search_batch("kb", queries, 10)
    recall = np.mean([len({h.id for h in f} & {h.id for h in t}) / 10
                      for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95
    half = set(ids[::2])
    filtered = index.search_batch("kb", queries, 10, allow=half)
    assert all(h.id in half for line in filtered for h in line)
    index.remove("kb", [found[0][0].id])
    assert found[0][0].id not in {h.id for h in index.search("kb", queries[0], 10)}


def test_cuda_hot_tier_answers_like_the_cpu() -> None:
    from gateway.index.tiers import CudaDevice, HotTier

    vectors = clustered(5_000)
    ids = [f"m{i}" for i in range(len(vectors))]
    tier = HotTier(CudaDevice(), 64 * 1024 * 1024, promote_after=1)
    index, reference = PartitionedIndex(tier=tier), ExactIndex()
    index.add("u", ids, vectors)
    reference.add("u", ids, vectors)
    queries = held_out_queries(vectors, 20, seed=2)
    index.search_batch("u", queries, 10)  # miss, promoted
    on_gpu = index.search_batch("u", queries, 10)
    assert tier.stats.hits == 1
    assert [[h.id for h in line] for line in on_gpu] == [
        [h.id for h in line] for line in reference.search_batch("u", queries, 10)]
