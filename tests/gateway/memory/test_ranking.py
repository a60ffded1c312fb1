"""The ranking policy: recency half-life and priority weight on top of relevance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support import memory

from gateway.domain.model import ScoredMemory
from gateway.memory.ranking import RankingPolicy, cosine_relevance, logit_relevance, rank

NOW = datetime(2024, 1, 31, tzinfo=UTC)


def scored(score: float, occurred_at: str, priority: int = 5) -> ScoredMemory:
    return ScoredMemory(memory(occurred_at=occurred_at, priority=priority).memory, score)


def test_off_by_default_and_factors() -> None:
    assert not RankingPolicy().active
    policy = RankingPolicy(recency_half_life_days=30, priority_weight=0.5)
    assert policy.factor("2024-01-01T00:00:00.000000Z", 5, NOW) == pytest.approx(0.5)
    assert policy.factor("2024-03-01T00:00:00.000000Z", 5, NOW) == pytest.approx(1.0)  # future
    assert RankingPolicy(priority_weight=0.5).factor("2024-01-01T00:00:00Z", 10, NOW) == 1.5
    assert RankingPolicy(priority_weight=0.5).factor("2024-01-01T00:00:00Z", 0, NOW) == 0.5
    assert policy.overridden(priority_weight=0.0) == RankingPolicy(30, 0.0)
    with pytest.raises(ValueError):
        RankingPolicy(priority_weight=2)


def test_recency_and_priority_reorder() -> None:
    old = scored(0.9, "2023-01-01T00:00:00.000000Z")
    new = scored(0.8, "2024-01-30T00:00:00.000000Z")
    assert rank([old, new], RankingPolicy(recency_half_life_days=30), NOW)[0] is not old
    low = scored(0.9, "2024-01-01T00:00:00Z", priority=0)
    high = scored(0.8, "2024-01-01T00:00:00Z", priority=10)
    ranked = rank([low, high], RankingPolicy(priority_weight=0.5), NOW)
    assert ranked[0].memory.id == high.memory.id and ranked[0].score == pytest.approx(1.2)


def test_relevance_maps_are_positive() -> None:
    assert cosine_relevance(-1.0) == 0.0 and cosine_relevance(1.0) == 1.0
    assert logit_relevance(0.0) == 0.5 and 0 < logit_relevance(-50.0) < logit_relevance(-1.0)
    assert logit_relevance(1000.0) == 1.0


def test_factors_are_the_two_parts_of_the_factor() -> None:
    """The console explains a rank with ``factors``; their product is what ``rank`` applies."""
    policy = RankingPolicy(recency_half_life_days=10, priority_weight=0.5)
    now = datetime(2024, 1, 21, tzinfo=UTC)
    recency, weight = policy.factors("2024-01-11T00:00:00Z", 10, now)
    assert recency == pytest.approx(0.5) and weight == pytest.approx(1.5)
    assert policy.factor("2024-01-11T00:00:00Z", 10, now) == pytest.approx(recency * weight)
    assert RankingPolicy().factors("2024-01-11T00:00:00Z", 0, now) == (1.0, 1.0)
