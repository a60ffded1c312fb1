"""Ranking policy: recency and priority, applied on top of relevance.

With the policy on, a candidate's score becomes

    relevance * recency * priority_factor

- ``relevance`` is the search's own score made positive: ``(1 + cosine) / 2`` for semantic
  search, BM25 for keyword search, the fused score for hybrid search, ``sigmoid(logit)`` when
  re-ranked.
- ``recency = 0.5 ** (age_days / half_life_days)``, the age counted from ``occurred_at`` to
  now (events in the future count as age 0). A memory one half-life older than another needs
  twice the relevance to rank level with it. Half-life 0 turns recency off.
- ``priority_factor = 1 + priority_weight * (priority - 5) / 5``: priority 5 (the default) is
  neutral, 10 multiplies by ``1 + w``, 0 by ``1 - w``. Weight 0 turns priority off.

Pure functions: the service hands in candidates and the clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from gateway.domain.model import ScoredMemory

NEUTRAL_PRIORITY = 5
MAX_HALF_LIFE_DAYS = 36_500.0
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class RankingPolicy:
    recency_half_life_days: float = 0.0  # 0 = off
    priority_weight: float = 0.0  # 0 = off; at most 1 so priority 0 never scores below 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.recency_half_life_days <= MAX_HALF_LIFE_DAYS:
            raise ValueError(f"recency_half_life_days must lie in [0, {MAX_HALF_LIFE_DAYS:g}]")
        if not 0.0 <= self.priority_weight <= 1.0:
            raise ValueError("priority_weight must lie in [0, 1]")

    @property
    def active(self) -> bool:
        return self.recency_half_life_days > 0 or self.priority_weight > 0

    def overridden(
        self, *, recency_half_life_days: float | None = None, priority_weight: float | None = None
    ) -> RankingPolicy:
        """This policy with a request's overrides (None keeps the setting)."""
        return replace(
            self,
            recency_half_life_days=(self.recency_half_life_days if recency_half_life_days is None
                                    else recency_half_life_days),
            priority_weight=self.priority_weight if priority_weight is None else priority_weight,
        )

    def factor(self, occurred_at: str, priority: int, now: datetime) -> float:
        """What a memory's relevance is multiplied by."""
        recency, weight = self.factors(occurred_at, priority, now)
        return recency * weight

    def factors(self, occurred_at: str, priority: int, now: datetime) -> tuple[float, float]:
        """The two parts of ``factor``: (recency, priority factor), 1.0 where a part is off;
        the web console shows them to explain a result's rank."""
        recency = weight = 1.0
        if self.recency_half_life_days > 0:
            when = datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
            age_days = max((now - when).total_seconds(), 0.0) / SECONDS_PER_DAY
            recency = 0.5 ** (age_days / self.recency_half_life_days)
        if self.priority_weight > 0:
            weight = 1.0 + self.priority_weight * (priority - NEUTRAL_PRIORITY) / NEUTRAL_PRIORITY
        return recency, weight


def cosine_relevance(score: float) -> float:
    return (1.0 + score) / 2.0


def logit_relevance(score: float) -> float:
    if score >= 0:
        return 1.0 / (1.0 + math.exp(-score))
    z = math.exp(score)  # no overflow for very negative logits
    return z / (1.0 + z)


def unchanged(score: float) -> float:
    return score


def rank(
    candidates: Sequence[ScoredMemory], policy: RankingPolicy, now: datetime,
    relevance: Callable[[float], float] = unchanged,
) -> list[ScoredMemory]:
    """Candidates re-scored by the policy, best first (ties keep the incoming order)."""
    rescored = [
        replace(c, score=relevance(c.score) * policy.factor(c.memory.occurred_at,
                                                            c.memory.priority, now))
        for c in candidates
    ]
    order = sorted(range(len(rescored)), key=lambda i: -rescored[i].score)
    return [rescored[i] for i in order]
