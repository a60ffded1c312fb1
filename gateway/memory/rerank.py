"""Second-stage ranking: a cross-encoder reorders the vector search's candidate pool.

Vector search is cheap and recall-oriented; a cross-encoder reads query and memory together and
orders far better, but costs a model run per pair. So a reranked search fetches a larger pool
(``max(limit * pool_factor, pool_min)``), scores all of it in one Triton request, and keeps the
best ``limit`` by reranker score. Each result keeps the cosine that found it (``similarity``);
``score`` becomes the reranker's raw logit (higher is better; the range is the model's own).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gateway.domain.model import ScoredMemory
from gateway.inference.reranker import RerankerClient


@dataclass(frozen=True, slots=True)
class RerankPolicy:
    default: bool = False  # rerank searches that do not say (only when a reranker is served)
    pool_factor: int = 4
    pool_min: int = 50

    def pool(self, limit: int) -> int:
        """How many vector hits the reranker sees for a search asking for ``limit``."""
        return max(limit * self.pool_factor, self.pool_min)


async def rerank_candidates(
    reranker: RerankerClient, query: str, candidates: list[ScoredMemory], limit: int
) -> list[ScoredMemory]:
    """The best ``limit`` candidates by reranker score, best first (ties keep vector order)."""
    if not candidates:
        return []
    scores = await reranker.score(query, [c.memory.text for c in candidates])
    order = np.argsort(-scores, kind="stable")[:limit]
    # Each keeps the cosine (and keyword score) that found it; only the score changes.
    return [replace(candidates[i], score=float(scores[i])) for i in order]
