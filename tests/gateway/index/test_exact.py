"""ExactIndex: top-k matches a full sort, tombstones, compaction, filters, rebuild."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.index.base import VectorIndex
from gateway.index.exact import ExactIndex


def unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def brute_force(vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int) -> list[str]:
    order = np.argsort(-(vectors @ query), kind="stable")[:k]
    return [ids[i] for i in order]


def test_implements_the_protocol() -> None:
    assert isinstance(ExactIndex(), VectorIndex)


def test_top_k_equals_full_sort_and_scores_are_cosine() -> None:
    vectors, index = unit_rows(500), ExactIndex()
    ids = [f"m{i}" for i in range(500)]
    index.add("alice", ids, vectors)
    query = unit_rows(1, seed=9)[0]
    hits = index.search("alice", query, 10)
    assert [h.id for h in hits] == brute_force(vectors, ids, query, 10)
    expected = float(vectors[ids.index(hits[0].id)] @ query)
    assert hits[0].score == pytest.approx(expected, abs=1e-6)
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


def test_collections_are_isolated() -> None:
    index = ExactIndex()
    index.add("alice", ["a"], unit_rows(1, seed=1))
    index.add("bob", ["b"], unit_rows(1, seed=2))
    assert [h.id for h in index.search("alice", unit_rows(1, seed=2)[0], 5)] == ["a"]
    assert index.search("carol", unit_rows(1)[0], 5) == []
    assert index.size() == 2 and index.size("bob") == 1


def test_remove_hides_rows_and_compaction_keeps_results() -> None:
    vectors, index = unit_rows(64), ExactIndex()
    ids = [f"m{i}" for i in range(64)]
    index.add("u", ids, vectors)
    assert index.remove("u", ids[:10] + ["missing"]) == 10  # below the compaction point
    assert index.size("u") == 54
    query = vectors[3]
    assert "m3" not in [h.id for h in index.search("u", query, 64)]
    index.remove("u", ids[10:40])  # past a quarter: compacts
    live_ids, live = ids[40:], vectors[40:]
    assert [h.id for h in index.search("u", query, 5)] == brute_force(live, live_ids, query, 5)
    index.add("u", ["new"], vectors[3:4])  # growth after compaction still works
    assert index.search("u", query, 1)[0].id == "new"


def test_add_existing_id_replaces_the_vector() -> None:
    vectors, index = unit_rows(3), ExactIndex()
    index.add("u", ["a", "b"], vectors[:2])
    index.add("u", ["a"], vectors[2:3])
    assert index.size("u") == 2
    assert index.search("u", vectors[2], 1)[0].id == "a"


def test_allow_filter_restricts_results() -> None:
    vectors, index = unit_rows(100), ExactIndex()
    ids = [f"m{i}" for i in range(100)]
    index.add("u", ids, vectors)
    allow = {"m5", "m7", "m99", "unknown"}
    hits = index.search("u", vectors[0], 10, allow=allow)
    assert {h.id for h in hits} == {"m5", "m7", "m99"}
    assert index.search("u", vectors[0], 10, allow=set()) == []


def test_growth_past_many_doublings() -> None:
    index = ExactIndex()
    vectors = unit_rows(1000)
    for start in range(0, 1000, 7):
        index.add("u", [f"m{i}" for i in range(start, min(start + 7, 1000))],
                  vectors[start : start + 7])
    assert index.size("u") == 1000
    assert index.search("u", vectors[777], 1)[0].id == "m777"


def test_rejects_wrong_dimension_and_duplicate_ids() -> None:
    index = ExactIndex()
    index.add("u", ["a"], unit_rows(1, dim=16))
    with pytest.raises(ValueError, match="16-d"):
        index.add("u", ["b"], unit_rows(1, dim=8))
    with pytest.raises(ValueError, match="duplicate"):
        index.add("u", ["c", "c"], unit_rows(2))
    with pytest.raises(ValueError, match="query"):
        index.search("u", unit_rows(1, dim=8)[0], 1)


def test_rebuild_replaces_content() -> None:
    index = ExactIndex()
    index.add("old", ["x"], unit_rows(1))
    vectors = unit_rows(4)
    count = index.rebuild([("a", "1", vectors[0]), ("a", "2", vectors[1]), ("b", "3", vectors[2])])
    assert count == 3 and index.size("old") == 0
    assert index.search("a", vectors[1], 1)[0].id == "2"
