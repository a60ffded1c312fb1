"""Search modes and what a search's ``score`` means in each.

- ``semantic``: dense retrieval; ``score`` = cosine similarity in [-1, 1].
- ``keyword``: BM25 over the lexical index; ``score`` = BM25 (> 0, no fixed upper bound).
  Needs no embedding, so it answers while Triton is down (unless a threshold asks for cosines).
- ``hybrid`` (default): both, fused (``gateway.memory.fusion``); ``score`` = the fused score.

Then, optionally: a reranked search's ``score`` is the cross-encoder's logit; a ranking policy
(``gateway.memory.ranking``) multiplies a positive form of the score by recency and priority.
``similarity`` is the cosine wherever a query vector exists (semantic and hybrid always, keyword
only with a threshold); ``threshold`` always bounds it, in every mode, before re-ranking.
An ``embedding`` query has no text to match words with: it is searched semantically.
With the lexical index off (``MEMORY_LEXICAL_INDEX=false``) a hybrid search runs semantic, and
the response's ``mode`` says so; keyword search is refused (409), as it could find nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from gateway.domain.model import ScoredMemory, SearchFilters
from gateway.errors import Conflict, InvalidInput
from gateway.memory.fusion import FusionPolicy
from gateway.memory.ranking import RankingPolicy
from gateway.store.types import CONTEXT_WEIGHT

if TYPE_CHECKING:
    from gateway.settings import Settings

SearchMode = Literal["hybrid", "semantic", "keyword"]
MAX_SKIPPED_EXPIRED = 256  # expired hits skipped after vector search; more: pre-filter instead


@dataclass(frozen=True, slots=True)
class SearchPolicy:
    mode: SearchMode = "hybrid"
    fusion: FusionPolicy = field(default_factory=FusionPolicy)
    ranking: RankingPolicy = field(default_factory=RankingPolicy)
    date_weight: float = 1.0  # keyword matches in the memory's date vs its text; 0 = text only
    context_weight: float = CONTEXT_WEIGHT  # a message's neighbours vs its text; 0 = text only
    lexical: bool = True  # False: no lexical index is kept (MEMORY_LEXICAL_INDEX=false)
    speaker_boost: float = 1.0  # hybrid: the named speaker's memories' factor; 1 = off
    session_weight: float = 0.0  # hybrid: pull toward a session's best other hit; 0 = off

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchPolicy:
        return cls(
            mode=settings.search_mode,
            fusion=FusionPolicy(
                method=settings.hybrid_fusion,
                semantic_weight=settings.hybrid_semantic_weight,
                rrf_k=settings.hybrid_rrf_k,
                pool_factor=settings.hybrid_pool_factor,
                pool_min=settings.hybrid_pool_min,
                score_weight=settings.hybrid_score_weight,
            ),
            ranking=RankingPolicy(settings.ranking_recency_half_life_days,
                                  settings.ranking_priority_weight),
            date_weight=settings.lexical_date_weight,
            context_weight=settings.lexical_context_weight,
            lexical=settings.lexical_index,
            speaker_boost=settings.search_speaker_boost,
            session_weight=settings.search_session_weight,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchQuery:
    """One search: a text ``query`` or an ``embedding`` (or both), of one user's memories.

    ``rerank`` (None: the policy's default, applied only when a reranker is served) orders the
    candidate pool with the cross-encoder. ``threshold`` bounds the cosine ``similarity`` in
    every mode, before re-ranking. ``mode`` and ``ranking`` (None: the policy's) choose the
    retrieval and how recency and priority weigh. Expired and archived memories are left out
    unless asked for (archived ones are then scored exactly: ``gateway.memory.archived``).
    """

    user_id: str
    query: str | None = None
    embedding: list[float] | None = None
    limit: int
    filters: SearchFilters = field(default_factory=SearchFilters)
    threshold: float | None = None
    rerank: bool | None = None
    mode: SearchMode | None = None
    ranking: RankingPolicy | None = None
    include_expired: bool = False
    include_archived: bool = False


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    results: list[ScoredMemory]
    mode: SearchMode  # the mode actually used


LEXICAL_OFF = ("keyword search is off on this server (MEMORY_LEXICAL_INDEX=false); "
               "search with mode 'semantic' or 'hybrid'")


def resolve_mode(asked: SearchMode, query: str | None, embedding: object | None, *,
                 lexical: bool = True) -> SearchMode:
    """The mode a search runs in: an embedding-only query can only be semantic, and so can any
    query without a lexical index."""
    if asked == "keyword" and not lexical:
        raise Conflict(LEXICAL_OFF)
    if query is not None and (lexical or asked == "semantic"):
        return asked
    if asked == "keyword":
        raise InvalidInput("keyword search needs a text query; an embedding can only be "
                           "searched semantically")
    return "semantic"
