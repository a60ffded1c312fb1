"""The search pipeline: retrieve (dense and lexical), merge archived hits, fuse, bound by the
threshold, rerank, rank. What each mode's score means: ``gateway.memory.search``.

A search takes the active space once, so its query vector never meets vectors of another
model version, even across a migration's switch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import numpy as np

from gateway.domain.model import Memory, ScoredMemory, SearchFilters
from gateway.domain.tenancy import tenant_of
from gateway.errors import Conflict, InvalidInput
from gateway.inference.reranker import NOT_LOADED, RerankerClient
from gateway.memory.archived import exact_cosines, merge_ranked
from gateway.memory.clock import parse_time, utc_now
from gateway.memory.fusion import fuse
from gateway.memory.ranking import RankingPolicy, cosine_relevance, logit_relevance, rank, unchanged
from gateway.memory.rerank import RerankPolicy, rerank_candidates
from gateway.memory.search import (
    MAX_SKIPPED_EXPIRED,
    SearchMode,
    SearchOutcome,
    SearchPolicy,
    SearchQuery,
    resolve_mode,
)
from gateway.memory.sessions import lift_sessions
from gateway.memory.speakers import boost_named_speaker
from gateway.memory.vectors import VectorSource
from gateway.store.base import Store
from gateway.versions.active import ActiveModels, Space
from gateway.write_first import WriteFirst

Hits = list[tuple[str, float]]  # (memory id, score), best first


@dataclass(frozen=True, slots=True)
class _Plan:
    """One search's decisions, taken before any retrieval."""

    ask: SearchQuery
    mode: SearchMode  # the mode actually used
    reranking: bool
    ranking: RankingPolicy
    now: str
    filters: SearchFilters  # the caller's, with liveness unless expired ones are asked for
    pool: int  # candidates each retrieval returns
    space: Space | None  # None: a keyword search that needs no vector
    speaker_boost: float = 1.0  # 1: off (not hybrid, no text query, or the setting)
    session_weight: float = 0.0  # 0: off (not hybrid, or the setting)

    @property
    def keep(self) -> int:
        """Candidates the speaker boost, the session lift, the reranker and the ranking
        policy see."""
        if (self.reranking or self.ranking.active or self.speaker_boost != 1.0
                or self.session_weight != 0.0):
            return self.pool
        return self.ask.limit


async def _nothing_read() -> dict[str, Memory]:
    return {}


def _says_something(memory: Memory) -> bool:
    """An image memory without caption has an empty text: its text-space vector and keywords
    say nothing, so it is never a hit here (its picture is searched in the CLIP space,
    ``gateway.memory.image_memories``)."""
    return memory.modality == "text" or bool(memory.text)


class SearchPipeline:
    def __init__(
        self, store: Store, vectors: VectorSource, models: ActiveModels,
        *, reranker: RerankerClient | None, rerank_policy: RerankPolicy,
        search_policy: SearchPolicy, ensure_loaded: Callable[[Space, str], Awaitable[None]],
        write_first: WriteFirst,
    ) -> None:
        self.store, self.vectors, self.models = store, vectors, models
        # single writes go before this pipeline's heavy steps (gateway.write_first)
        self.write_first = write_first
        self.reranker, self.rerank_policy, self.policy = reranker, rerank_policy, search_policy
        self.ensure_loaded = ensure_loaded  # brings an evicted index partition back

    async def run(self, ask: SearchQuery) -> SearchOutcome:
        """The user's memories that best answer ``ask``, best first."""
        plan = await self._plan(ask)
        read: dict[str, Memory] = {}  # the keyword hits' rows, read with them
        (vector, semantic), keyword = await asyncio.gather(self._dense(plan),
                                                           self._lexical(plan, read))
        if ask.include_archived:
            semantic, keyword = await self._with_archived(plan, vector, semantic, keyword,
                                                          read)
        if plan.mode == "hybrid":
            ranked = fuse(semantic, keyword, self.policy.fusion)
        else:
            ranked = list(semantic if plan.mode == "semantic" else keyword)
        similarity = dict(semantic)
        if ask.threshold is not None and plan.space is not None and vector is not None:
            # the threshold bounds every candidate's cosine, keyword-only ones' included
            unscored = [i for i, _ in ranked if i not in similarity]
            similarity.update(await self._cosines(plan.space, vector, unscored))
            ranked = [(i, s) for i, s in ranked if similarity.get(i, -2.0) >= ask.threshold]
        ranked = ranked[:plan.keep]
        await self.write_first.before_search_step()  # the rows and cosines: one more step
        unread = [i for i, _ in ranked if i not in read]
        found, cosines = await asyncio.gather(
            self.store.get_many(unread) if unread else _nothing_read(),
            self._keyword_only_cosines(plan, vector, ranked, similarity))
        found.update((i, read[i]) for i, _ in ranked if i in read)
        keyword_scores = dict(keyword)
        scored = [ScoredMemory(found[i], score, similarity.get(i, cosines.get(i)),
                               keyword_scores.get(i))
                  for i, score in ranked if i in found and _says_something(found[i])]
        return SearchOutcome(await self._ordered(plan, scored), plan.mode)

    async def _keyword_only_cosines(self, plan: _Plan, vector: np.ndarray | None,
                                    ranked: Hits, similarity: dict[str, float]
                                    ) -> dict[str, float]:
        """The cosines of the candidates only keyword search found, read beside the rows
        (one store round trip fewer than after them; a client-server store feels each)."""
        if plan.space is None or vector is None:
            return {}
        return await self._cosines(plan.space, vector,
                                   [i for i, _ in ranked if i not in similarity])

    async def _plan(self, ask: SearchQuery) -> _Plan:
        used = resolve_mode(ask.mode or self.policy.mode, ask.query, ask.embedding,
                            lexical=self.policy.lexical)
        reranking = await self._reranking(ask.rerank, ask.query)
        ranking = self.policy.ranking if ask.ranking is None else ask.ranking
        now = utc_now()
        filters = ask.filters if ask.include_expired else replace(ask.filters, live_at=now)
        pool = ask.limit
        if used == "hybrid" or ranking.active:
            pool = max(pool, self.policy.fusion.pool(ask.limit))
        if reranking:
            pool = max(pool, self.rerank_policy.pool(ask.limit))
        space = (self.models.require() if used != "keyword" or ask.threshold is not None
                 else None)
        boost = self.policy.speaker_boost if used == "hybrid" and ask.query else 1.0
        lift = self.policy.session_weight if used == "hybrid" else 0.0
        return _Plan(ask, used, reranking, ranking, now, filters, pool, space, boost, lift)

    async def _ordered(self, plan: _Plan, scored: list[ScoredMemory]) -> list[ScoredMemory]:
        """Candidates reranked and ranked as the plan says, cut to the limit."""
        relevance = cosine_relevance if plan.mode == "semantic" else unchanged
        ask = plan.ask
        if plan.speaker_boost != 1.0 and ask.query is not None:
            scored = boost_named_speaker(ask.query, scored, plan.speaker_boost)
        if plan.session_weight != 0.0:
            scored = lift_sessions(scored, plan.session_weight)
        if plan.reranking:
            assert self.reranker is not None and ask.query is not None
            try:
                scored = await rerank_candidates(self.reranker, ask.query, scored,
                                                 len(scored) if plan.ranking.active
                                                 else ask.limit)
                relevance = logit_relevance
            except Conflict:  # the reranker went away since we looked
                if ask.rerank is not None:
                    raise  # asked for explicitly: say so (409)
        if plan.ranking.active:
            scored = rank(scored, plan.ranking, parse_time(plan.now), relevance)
        return scored[:ask.limit]

    async def _dense(self, plan: _Plan) -> tuple[np.ndarray | None, Hits]:
        """The query vector (where the plan has a space) and the vector search's hits."""
        space, ask = plan.space, plan.ask
        if space is None:
            return None, []
        await self.write_first.before_search_step()
        query_vector = self.vectors.for_query(space, ask.query, ask.embedding, ("embedding",),
                                              tenant=tenant_of(ask.user_id))
        if plan.mode == "keyword":
            return await query_vector, []
        vector, scope = await asyncio.gather(
            query_vector, self._vector_scope(space, ask.user_id, plan.filters))
        if scope is None:
            return vector, []
        allow, skip = scope
        await self.write_first.before_search_step()
        hits = await space.searcher.search(ask.user_id, vector, plan.pool + len(skip),
                                           allow=allow)
        return vector, [(h.id, h.score) for h in hits if h.id not in skip][:plan.pool]

    async def _lexical(self, plan: _Plan, read: dict[str, Memory], *,
                       archived: bool = False) -> Hits:
        """The keyword hits; their memories go into ``read`` (one store call for both)."""
        ask = plan.ask
        if plan.mode == "semantic" or ask.query is None:
            return []
        await self.write_first.before_search_step()
        found = await self.store.keyword_memories(
            ask.user_id, ask.query, plan.pool, plan.filters, date_weight=self.policy.date_weight,
            context_weight=self.policy.context_weight, archived=archived)
        read.update((memory.id, memory) for memory, _ in found)
        return [(memory.id, score) for memory, score in found]

    async def _with_archived(self, plan: _Plan, vector: np.ndarray | None, semantic: Hits,
                             keyword: Hits, read: dict[str, Memory]) -> tuple[Hits, Hits]:
        """Both candidate lists with the archived memories' hits merged in by score."""
        if plan.mode != "keyword" and vector is not None and plan.space is not None:
            rows = await self.store.archived_vectors(plan.ask.user_id, plan.filters)
            found = await asyncio.to_thread(exact_cosines, rows, plan.space.info.label, vector,
                                            plan.pool)
            semantic = merge_ranked(semantic, found, plan.pool)
        if plan.mode != "semantic" and plan.ask.query is not None:
            keyword = merge_ranked(keyword, await self._lexical(plan, read, archived=True),
                                   plan.pool)
        return semantic, keyword

    async def _vector_scope(
        self, space: Space, user_id: str, filters: SearchFilters
    ) -> tuple[set[str] | None, set[str]] | None:
        """What a vector search may return: (allow-list or None for all, ids to skip after);
        None when nothing can match. Expired memories are skipped after the search while they
        are few (a partial index finds them), pre-filtered when there are many."""
        await self.ensure_loaded(space, user_id)
        if space.index.size(user_id) == 0:
            return None
        skip: set[str] = set()
        if filters.empty and filters.live_at is not None:
            skip = await self.store.expired_ids(user_id, filters.live_at, MAX_SKIPPED_EXPIRED + 1)
        if filters.empty and len(skip) <= MAX_SKIPPED_EXPIRED:
            return None, skip
        allow = await self.store.filter_ids(user_id, filters)
        return (allow, set()) if allow else None

    async def _cosines(self, space: Space, vector: np.ndarray, ids: list[str]) -> dict[str, float]:
        """Cosines of stored memories the vector search did not return (keyword-only hits),
        from their stored vectors when those are in ``space``'s model."""
        if not ids:
            return {}
        stored = await self.store.embeddings(ids)
        return {key: float(np.dot(row, vector)) for key, (label, row) in stored.items()
                if label == space.info.label and row.shape == vector.shape}

    async def _reranking(self, asked: bool | None, query: str | None) -> bool:
        """Whether a search reranks. An explicit ``true`` is honoured or refused (422 without a
        text query, 409 without a served reranker); the default applies only where it can."""
        if asked is None:
            return (self.rerank_policy.default and query is not None
                    and self.reranker is not None and await self.reranker.available())
        if not asked:
            return False
        if query is None:
            raise InvalidInput.at(("rerank",), "re-ranking needs a text 'query'; a "
                                  "cross-encoder cannot read an 'embedding'")
        if self.reranker is None:
            raise Conflict(NOT_LOADED)
        await self.reranker.require()
        return True
