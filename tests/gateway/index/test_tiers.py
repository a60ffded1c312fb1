"""The hot tier's policy on its CPU twin: promotion, LRU eviction under budget, staleness."""

from __future__ import annotations

import numpy as np

from gateway.index.exact import ExactIndex
from gateway.index.partitioned import PartitionedIndex
from gateway.index.tiers import HostDevice, HotTier


def unit_rows(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def engine(budget_rows: int, dim: int = 8) -> tuple[PartitionedIndex, HotTier]:
    tier = HotTier(HostDevice(), budget_rows * dim * 4, promote_after=2)
    return PartitionedIndex(tier=tier), tier


def fill(index: PartitionedIndex, user: str, n: int, seed: int) -> np.ndarray:
    vectors = unit_rows(n, seed=seed)
    index.add(user, [f"{user}-{i}" for i in range(n)], vectors)
    return vectors


def test_promotion_after_repeated_misses_then_hits_with_equal_answers() -> None:
    index, tier = engine(budget_rows=1000)
    reference = ExactIndex()
    vectors = fill(index, "alice", 100, seed=1)
    reference.add("alice", [f"alice-{i}" for i in range(100)], vectors)
    query = unit_rows(1, seed=9)[0]
    first = index.search("alice", query, 5)
    assert tier.stats.misses == 1 and tier.resident() == []
    index.search("alice", query, 5)  # second miss promotes
    assert tier.resident() == ["alice"] and tier.stats.promotions == 1
    third = index.search("alice", query, 5, allow={"alice-1", "alice-2", "alice-50"})
    assert tier.stats.hits == 1
    assert [h.id for h in first] == [h.id for h in reference.search("alice", query, 5)]
    assert [h.id for h in third] == [h.id for h in reference.search(
        "alice", query, 5, allow={"alice-1", "alice-2", "alice-50"})]
    assert tier.stats.bytes == 100 * 8 * 4


def test_lru_eviction_keeps_within_budget() -> None:
    index, tier = engine(budget_rows=250)
    for user, seed in (("a", 1), ("b", 2), ("c", 3)):
        fill(index, user, 100, seed)
    query = unit_rows(1, seed=9)[0]
    for user in ("a", "a", "b", "b"):
        index.search(user, query, 3)
    assert tier.resident() == ["a", "b"]
    index.search("a", query, 3)  # a is now most recently used
    index.search("c", query, 3)
    index.search("c", query, 3)  # promoting c evicts the least recently used: b
    assert tier.resident() == ["a", "c"]
    assert tier.stats.evictions == 1 and tier.stats.bytes <= tier.budget_bytes


def test_a_changed_partition_is_a_miss_not_a_stale_answer() -> None:
    index, tier = engine(budget_rows=1000)
    fill(index, "a", 50, seed=1)
    query = unit_rows(1, seed=9)[0]
    index.search("a", query, 1)
    index.search("a", query, 1)
    assert tier.resident() == ["a"]
    index.add("a", ["exact-match"], query[None, :])
    assert index.search("a", query, 1)[0].id == "exact-match"
    assert tier.resident() == []  # the stale copy was dropped
    index.remove("a", ["exact-match"])
    index.search("a", query, 1)
    assert tier.resident() == ["a"]  # re-promoted
    assert index.search("a", query, 1)[0].id != "exact-match"


def test_oversized_partitions_stay_warm_and_drop_forgets() -> None:
    index, tier = engine(budget_rows=10)
    fill(index, "big", 50, seed=1)
    query = unit_rows(1, seed=9)[0]
    for _ in range(3):
        index.search("big", query, 1)
    assert tier.resident() == [] and tier.stats.bytes == 0
    fill(index, "small", 5, seed=2)
    index.search("small", query, 1)
    index.search("small", query, 1)
    assert tier.resident() == ["small"]
    index.drop("small")
    assert tier.resident() == [] and tier.stats.bytes == 0
