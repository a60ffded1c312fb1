"""Fusion of a dense and a keyword ranking: pure functions, no I/O."""

from __future__ import annotations

import pytest

from gateway.memory.fusion import FusionPolicy, fuse

DENSE = [("a", 0.9), ("b", 0.8), ("c", 0.1)]
KEYWORD = [("c", 12.0), ("d", 3.0), ("a", 1.0)]


def test_rrf_rewards_agreement_and_follows_the_weight() -> None:
    equal = dict(fuse(DENSE, KEYWORD, FusionPolicy("rrf", 0.5, rrf_k=60, score_weight=0.0)))
    assert equal["a"] == pytest.approx(0.5 / 61 + 0.5 / 63)
    assert equal["c"] == pytest.approx(0.5 / 63 + 0.5 / 61)
    assert equal["b"] == pytest.approx(0.5 / 62) and equal["d"] == pytest.approx(0.5 / 62)
    dense_only = [i for i, _ in fuse(DENSE, KEYWORD, FusionPolicy("rrf", 1.0, score_weight=0))]
    assert dense_only[:3] == ["a", "b", "c"]
    keyword_only = [i for i, _ in fuse(DENSE, KEYWORD, FusionPolicy("rrf", 0.0, score_weight=0))]
    assert keyword_only[:3] == ["c", "d", "a"]


def test_rrf_score_bonus_adds_each_lists_normalised_score_in_first_rank_shares() -> None:
    fused = dict(fuse(DENSE, KEYWORD, FusionPolicy("rrf", 0.5, rrf_k=10, score_weight=0.2)))
    bonus = 0.2 / 11
    assert fused["a"] == pytest.approx(0.5 / 11 + 0.5 / 13 + bonus * (1.0 + 0.0))
    assert fused["b"] == pytest.approx(0.5 / 12 + bonus * (0.7 / 0.8))
    assert fused["c"] == pytest.approx(0.5 / 13 + 0.5 / 11 + bonus * (0.0 + 1.0))
    assert fused["d"] == pytest.approx(0.5 / 12 + bonus * (2.0 / 11.0))


def test_rrf_score_bonus_separates_a_clear_keyword_winner_from_a_near_tie() -> None:
    # Ranks alone put the dense list's first above the keyword list's first at w > 0.5; a
    # keyword first far ahead of its runner-up (and a dense first barely ahead) turns it.
    dense = [("x", 0.50), ("y", 0.49), ("z", 0.10)]
    keyword = [("y", 30.0), ("x", 2.0), ("z", 1.0)]
    ranks_only = FusionPolicy("rrf", 0.55, rrf_k=10, score_weight=0.0)
    assert [i for i, _ in fuse(dense, keyword, ranks_only)][:2] == ["x", "y"]
    with_scores = FusionPolicy("rrf", 0.55, rrf_k=10, score_weight=0.2)
    assert [i for i, _ in fuse(dense, keyword, with_scores)][:2] == ["y", "x"]


def test_blend_normalises_each_list() -> None:
    fused = dict(fuse(DENSE, KEYWORD, FusionPolicy("blend", 0.5)))
    assert fused["a"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert fused["c"] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)
    assert fused["d"] == pytest.approx(0.5 * (2.0 / 11.0))
    assert fused["b"] == pytest.approx(0.5 * (0.7 / 0.8))
    assert dict(fuse([("x", 0.3)], [], FusionPolicy("blend", 0.3))) == {"x": pytest.approx(0.3)}


def test_one_empty_list_keeps_the_other_order_and_ties_keep_dense_first() -> None:
    for method in ("rrf", "blend"):
        assert [i for i, _ in fuse(DENSE, [], FusionPolicy(method))] == ["a", "b", "c"]  # type: ignore[arg-type]
        assert [i for i, _ in fuse([], KEYWORD, FusionPolicy(method))] == ["c", "d", "a"]  # type: ignore[arg-type]
    assert fuse([], [], FusionPolicy()) == []
    tie = fuse([("x", 0.5)], [("y", 2.0)], FusionPolicy("rrf", 0.5))
    assert [i for i, _ in tie] == ["x", "y"]


def test_pool_and_bounds() -> None:
    assert FusionPolicy(pool_factor=4, pool_min=40).pool(5) == 40
    assert FusionPolicy(pool_factor=4, pool_min=40).pool(50) == 200
    with pytest.raises(ValueError):
        FusionPolicy(semantic_weight=1.5)
    with pytest.raises(ValueError):
        FusionPolicy(pool_factor=0)
    with pytest.raises(ValueError):
        FusionPolicy(score_weight=-0.1)
