"""The warm (RAM) tier: LRU eviction under a byte budget, lazy loads, cold writes ignored."""

from __future__ import annotations

import numpy as np

from gateway.index.partitioned import PartitionedIndex


def unit_rows(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_budget_evicts_least_recently_used_partitions() -> None:
    budget = 2 * 16 * 8 * 4  # two partitions of up to 16 rows of 8 floats
    index = PartitionedIndex(ram_budget_bytes=budget)
    for user in ("a", "b"):
        index.load(user, [f"{user}{i}" for i in range(10)], unit_rows(10))
    index.search("a", unit_rows(1)[0], 1)  # a is now the most recent
    index.load("c", [f"c{i}" for i in range(10)], unit_rows(10))
    assert not index.needs_load("a") and index.needs_load("b") and not index.needs_load("c")
    assert index.ram is not None and index.ram.evictions == 1
    assert index.ram.total <= budget


def test_cold_writes_are_left_to_the_store_and_loads_replace() -> None:
    index = PartitionedIndex(ram_budget_bytes=1 << 20)
    assert index.needs_load("new-user")
    index.add("new-user", ["x"], unit_rows(1))  # cold: ignored, the store has it
    assert index.size("new-user") == 0 and index.needs_load("new-user")
    index.load("new-user", ["x", "y"], unit_rows(2))
    assert index.size("new-user") == 2 and not index.needs_load("new-user")
    index.add("new-user", ["z"], unit_rows(1, seed=3))  # warm: applied
    assert index.size("new-user") == 3
    index.load("empty", [], np.zeros((0, 0), np.float32))
    assert index.needs_load("empty")  # nothing held for an empty user


def test_rebuild_with_a_budget_is_lazy() -> None:
    index = PartitionedIndex(ram_budget_bytes=1 << 20)
    assert index.rebuild([("a", "1", unit_rows(1)[0])]) == 0
    assert index.needs_load("a")


def test_without_a_budget_nothing_needs_loading() -> None:
    index = PartitionedIndex()
    assert not index.needs_load("anyone")
