"""Hybrid search: one ranking from a dense (cosine) list and a keyword (BM25) list.

Both retrievers fetch a pool of ``max(limit * pool_factor, pool_min)`` candidates; ``fuse``
merges the two pools. Two methods:

- ``rrf`` (weighted reciprocal rank fusion): ``w / (k + rank_dense) + (1 - w) / (k + rank_kw)``,
  ranks from 1, a list that misses an id adds nothing; plus the **score bonus**
  ``s * (norm_dense + norm_kw) / (k + 1)``, each list's scores min-max normalised over its own
  pool (``s`` = ``score_weight``, 0 = ranks only). Ranks alone treat a clear BM25 winner and a
  near tie alike; the bonus keeps how far apart the scores are, in units of a first rank's
  share, so the two score scales still never need to agree. Off by default: on the LoCoMo
  development set ``s = 0.2`` found 3 more questions of 759 with the default embedder and 5
  fewer with the fully int8 one (docs/benchmarks/query-path.md), so it is a knob to tune, not
  a measured win.
- ``blend``: each list's scores min-max normalised over its own pool to [0, 1], then
  ``w * dense + (1 - w) * keyword``; a list that misses an id adds 0.

Pure functions, no I/O: the search service feeds them and the benchmark tunes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

FusionMethod = Literal["rrf", "blend"]
Ranked = Sequence[tuple[str, float]]  # (id, score), best first, higher is better


@dataclass(frozen=True, slots=True)
class FusionPolicy:
    method: FusionMethod = "rrf"
    semantic_weight: float = 0.4  # weight of the dense list; the keyword list gets 1 - w
    rrf_k: int = 10
    pool_factor: int = 3
    pool_min: int = 40
    score_weight: float = 0.0  # rrf: the normalised-score bonus, in first-rank shares; 0 = off

    def __post_init__(self) -> None:
        if not 0.0 <= self.semantic_weight <= 1.0:
            raise ValueError("semantic_weight must lie in [0, 1]")
        if not 0.0 <= self.score_weight <= 10.0:
            raise ValueError("score_weight must lie in [0, 10]")
        if self.rrf_k < 0 or self.pool_factor < 1 or self.pool_min < 1:
            raise ValueError("rrf_k must be >= 0, pool_factor and pool_min >= 1")

    def pool(self, limit: int) -> int:
        """How many candidates each retriever fetches for a search asking for ``limit``."""
        return max(limit * self.pool_factor, self.pool_min)


def fuse(semantic: Ranked, keyword: Ranked, policy: FusionPolicy) -> list[tuple[str, float]]:
    """Ids with their fused score, best first; ties keep first-seen order (dense list first).

    Inputs are (id, score) best first: cosine for ``semantic``, BM25 (higher is better) for
    ``keyword``. Either may be empty; then the result is the other list's order.
    """
    w = policy.semantic_weight
    if policy.method == "rrf":
        k = policy.rrf_k
        parts = [_reciprocal_ranks(semantic, k), _reciprocal_ranks(keyword, k)]
        weights = [w, 1.0 - w]
        if policy.score_weight > 0.0:
            bonus = policy.score_weight / (k + 1)
            parts += [_normalised(semantic), _normalised(keyword)]
            weights += [bonus, bonus]
    else:
        parts, weights = [_normalised(semantic), _normalised(keyword)], [w, 1.0 - w]
    fused: dict[str, float] = {}
    for weight, part in zip(weights, parts, strict=True):
        for item, value in part.items():
            fused[item] = fused.get(item, 0.0) + weight * value
    order = {item: position for position, item in enumerate(fused)}
    return sorted(fused.items(), key=lambda pair: (-pair[1], order[pair[0]]))


def _reciprocal_ranks(ranked: Ranked, k: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for rank, (item, _) in enumerate(ranked, start=1):
        out.setdefault(item, 1.0 / (k + rank))
    return out


def _normalised(ranked: Ranked) -> dict[str, float]:
    """Scores mapped to [0, 1] over the list (all 1.0 when they are equal)."""
    if not ranked:
        return {}
    scores = [score for _, score in ranked]
    low, high = min(scores), max(scores)
    span = high - low
    out: dict[str, float] = {}
    for item, score in ranked:
        out.setdefault(item, 1.0 if span <= 0 else (score - low) / span)
    return out
