"""The memory service: every rule about adding, finding, changing and forgetting memories.

Order of truth: a change is committed to the store first, then mirrored into the index, both
under one mutation lock so the index never disagrees with the store. Embedding (the slow part)
happens before the lock, so concurrent writers still share Triton batches.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.index import VectorIndex
from gateway.index.batcher import SearchBatcher
from gateway.inference import EmbedderClient, ModelInfo, RerankerClient
from gateway.inference.reranker import NOT_LOADED
from gateway.memory.ids import parse_id, uuid7
from gateway.memory.model import (
    HistoryEvent,
    Memory,
    ScoredMemory,
    SearchFilters,
    StoredMemory,
)
from gateway.memory.rerank import RerankPolicy, rerank_candidates
from gateway.store import Store

DEFAULT_PRIORITY = 5


def utc_now() -> str:
    """UTC ISO-8601 with microseconds and 'Z': fixed width, so text order is time order."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class NewMemory:
    user_id: str
    text: str
    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, Any] | None = None
    priority: int = DEFAULT_PRIORITY
    embedding: list[float] | None = None  # client-supplied, in the active model's space
    occurred_at: str | None = None  # UTC ISO-8601; None: when it is stored
    expires_at: str | None = None


@dataclass(frozen=True, slots=True)
class MemoryChanges:
    text: str | None = None
    metadata: dict[str, Any] | None = None
    priority: int | None = None


def encode_cursor(memory_id: str) -> str:
    return base64.urlsafe_b64encode(memory_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    memory_id = parse_id(raw)
    if memory_id is None:
        raise InvalidInput({"loc": ["query", "cursor"], "msg": "invalid cursor"})
    return memory_id


@dataclass(frozen=True, slots=True)
class Space:
    """One embedding space: the model version that makes its vectors, and their index.

    Searches take the active space once, embed with its version and search its index, so a
    query vector never meets vectors from another version, even across a switch.
    """

    info: ModelInfo
    index: VectorIndex
    searcher: SearchBatcher

    async def close(self) -> None:
        await self.searcher.close()
        close = getattr(self.index, "close", None)
        if close is not None:
            close()


@dataclass(frozen=True, slots=True)
class _Vectors:
    """A write's vectors: in the active space, and in a migration's target space if one runs."""

    generation: int
    active: Space
    vectors: np.ndarray
    target: Space | None = None
    target_vectors: np.ndarray | None = None


class MemoryService:
    def __init__(
        self, store: Store, index: VectorIndex, embedder: EmbedderClient,
        searcher: SearchBatcher | None = None,
        *,
        reranker: RerankerClient | None = None,
        rerank_policy: RerankPolicy | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.rerank_policy = rerank_policy or RerankPolicy()
        self.index = index  # the active space's index, also before the model is known
        self.searcher = searcher or SearchBatcher(index)
        self.target: Space | None = None  # set while an embedder migration runs
        self.index_built = False
        self.generation = 0  # bumped when spaces change: in-flight writes re-embed
        self.mutation = asyncio.Lock()
        # How the active model is found when not yet known; the version manager replaces it.
        self.connect: Callable[[], Awaitable[ModelInfo]] = embedder.discover

    @property
    def active(self) -> Space | None:
        info = self.embedder.info
        return None if info is None else Space(info, self.index, self.searcher)

    async def active_space(self) -> Space:
        if self.embedder.info is None:
            await self.connect()
        space = self.active
        assert space is not None
        return space

    def adopt(self, space: Space) -> None:
        """Make ``space`` the active one (a migration's switch), in one synchronous step."""
        self.embedder.info = space.info
        self.index, self.searcher = space.index, space.searcher
        self.target = None
        self.generation += 1

    def begin_target(self, space: Space | None) -> None:
        self.target = space
        self.generation += 1

    # -- start-up -----------------------------------------------------------------------------
    async def build_index(self) -> int:
        """Load every stored vector into the index (the store is the truth; this is a cache)."""
        rows = await self.store.vectors()
        count = await asyncio.to_thread(self.index.rebuild, rows)
        self.index_built = True
        return count

    async def _ensure_loaded(self, space: Space, user_id: str) -> None:
        """Bring an evicted partition back from the store (only with a RAM budget).

        Under the mutation lock, so no write can commit between the store read and the load.
        """
        if not space.index.needs_load(user_id):
            return
        async with self.mutation:
            if space.index.needs_load(user_id) and space.index is self.index:
                ids, vectors = await self.store.user_vectors(user_id)
                await asyncio.to_thread(space.index.load, user_id, ids, vectors)

    # -- vectors --------------------------------------------------------------------------------
    @staticmethod
    def _client_vector(info: ModelInfo, values: list[float], field: list[str | int]) -> np.ndarray:
        vector = np.asarray(values, dtype=np.float64)
        if vector.shape != (info.dim,):
            raise InvalidInput({"loc": field, "msg": f"expected {info.dim} dimensions "
                                f"for {info.label}, got {vector.size}"})
        if not np.all(np.isfinite(vector)):
            raise InvalidInput({"loc": field, "msg": "embedding values must be finite"})
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0.0:
            raise InvalidInput({"loc": field, "msg": "embedding must have a non-zero, finite norm"})
        return (vector / norm).astype(np.float32)

    async def _vectors_in(
        self, space: Space, texts: Sequence[str | None], supplied: list[list[float] | None],
        locs: list[list[str | int]],
    ) -> np.ndarray:
        """Client vectors where given, one Triton request (to ``space``'s version) for the rest."""
        out = np.zeros((len(texts), space.info.dim), dtype=np.float32)
        missing = []
        for i, values in enumerate(supplied):
            if values is None:
                missing.append(i)
            else:
                out[i] = self._client_vector(space.info, values, locs[i])
        if missing:
            out[missing] = await self.embedder.embed(
                [texts[i] or "" for i in missing], version=space.info.version
            )
        return out

    async def _write_vectors(
        self, texts: list[str], supplied: list[list[float] | None], locs: list[list[str | int]]
    ) -> _Vectors:
        """Vectors for a write, in every live space: client vectors belong to the active space
        only, so the migration target always gets the server's embedding of the text."""
        generation = self.generation
        active, target = await self.active_space(), self.target
        if target is None:
            return _Vectors(generation, active, await self._vectors_in(active, texts, supplied,
                                                                       locs))
        vectors, target_vectors = await asyncio.gather(
            self._vectors_in(active, texts, supplied, locs),
            self._vectors_in(target, texts, [None] * len(texts), locs),
        )
        return _Vectors(generation, active, vectors, target, target_vectors)

    # -- writes ---------------------------------------------------------------------------------
    async def add_many(self, drafts: list[NewMemory], *, field: str = "items") -> list[Memory]:
        """Store all drafts or none; results come back in input order."""
        locs: list[list[str | int]] = [
            ["body", "items", i, "embedding"] if field == "items" else ["body", "embedding"]
            for i in range(len(drafts))
        ]
        for _ in range(3):  # a space switch between embedding and commit means: embed again
            made = await self._write_vectors([d.text for d in drafts],
                                             [d.embedding for d in drafts], locs)
            async with self.mutation:
                if made.generation != self.generation:
                    continue
                items = []
                for draft, vector in zip(drafts, made.vectors, strict=True):
                    now = utc_now()
                    memory = Memory(
                        id=uuid7(), user_id=draft.user_id, text=draft.text,
                        agent_id=draft.agent_id, run_id=draft.run_id,
                        metadata=draft.metadata or {}, priority=draft.priority,
                        created_at=now, updated_at=now, embedding_model=made.active.info.label,
                        occurred_at=draft.occurred_at or now, expires_at=draft.expires_at,
                    )
                    items.append(StoredMemory(memory, vector))
                shadows = None
                if made.target is not None and made.target_vectors is not None:
                    shadows = [(made.target.info.label, v) for v in made.target_vectors]
                await self.store.insert_many(items, shadows)
                ids = [item.memory.id for item in items]
                users = [item.memory.user_id for item in items]
                await asyncio.to_thread(_index_rows, made.active.index, users, ids,
                                        made.vectors)
                if made.target is not None and made.target_vectors is not None:
                    await asyncio.to_thread(_index_rows, made.target.index, users, ids,
                                            made.target_vectors)
                return [item.memory for item in items]
        raise Conflict("the embedding model changed repeatedly during this request; retry")

    async def update(self, memory_id: str, changes: MemoryChanges) -> Memory:
        for _ in range(3):
            previous = await self.get(memory_id)
            updated = replace(
                previous,
                text=changes.text if changes.text is not None else previous.text,
                metadata=changes.metadata if changes.metadata is not None else previous.metadata,
                priority=changes.priority if changes.priority is not None else previous.priority,
                updated_at=max(utc_now(), previous.updated_at),
            )
            made = None
            if updated.text != previous.text:
                made = await self._write_vectors([updated.text], [None], [["body", "text"]])
                updated = replace(updated, embedding_model=made.active.info.label)
            async with self.mutation:
                if made is not None and made.generation != self.generation:
                    continue
                target = StoredMemory(updated, made.vectors[0]) if made else updated
                shadow = None
                if made is not None and made.target is not None:
                    assert made.target_vectors is not None
                    shadow = (made.target.info.label, made.target_vectors[0])
                if not await self.store.update(target, previous, shadow):
                    if await self.store.get(memory_id) is None:
                        raise NotFound(f"memory {memory_id} not found")
                    raise Conflict(f"memory {memory_id} changed concurrently; retry the update")
                if made is not None:
                    await asyncio.to_thread(made.active.index.add, updated.user_id,
                                            [updated.id], made.vectors[:1])
                    if made.target is not None and made.target_vectors is not None:
                        await asyncio.to_thread(made.target.index.add, updated.user_id,
                                                [updated.id], made.target_vectors[:1])
                return updated
        raise Conflict("the embedding model changed repeatedly during this request; retry")

    def _indexes(self) -> list[VectorIndex]:
        return [self.index] + ([self.target.index] if self.target is not None else [])

    async def delete(self, memory_id: str) -> None:
        async with self.mutation:
            memory = await self.store.delete(memory_id, utc_now())
            if memory is None:
                raise NotFound(f"memory {memory_id} not found")
            for index in self._indexes():
                await asyncio.to_thread(index.remove, memory.user_id, [memory_id])

    async def delete_user(self, user_id: str) -> int:
        async with self.mutation:
            ids = await self.store.delete_user(user_id, utc_now())
            for index in self._indexes():
                await asyncio.to_thread(index.drop, user_id)
        return len(ids)

    # -- reads ----------------------------------------------------------------------------------
    async def get(self, memory_id: str) -> Memory:
        memory = await self.store.get(memory_id)
        if memory is None:
            raise NotFound(f"memory {memory_id} not found")
        return memory

    async def list_page(
        self, user_id: str, limit: int, cursor: str | None
    ) -> tuple[list[Memory], str | None]:
        after = decode_cursor(cursor) if cursor else None
        rows = await self.store.list_page(user_id, limit + 1, after)
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
        return page, next_cursor

    async def history(self, memory_id: str) -> list[HistoryEvent]:
        events = await self.store.history(memory_id)
        if not events:
            raise NotFound(f"memory {memory_id} not found")
        return events

    async def search(
        self,
        user_id: str,
        *,
        query: str | None,
        embedding: list[float] | None,
        limit: int,
        filters: SearchFilters,
        threshold: float | None,
        rerank: bool | None = None,
    ) -> list[ScoredMemory]:
        """The user's memories closest in meaning to the query, best first.

        ``rerank`` (None: the policy's default, applied only when a reranker is served) orders
        a larger vector pool with the cross-encoder. ``threshold`` always bounds the cosine
        ``similarity``, before re-ranking: reranker logits have no fixed range to bound.
        """
        reranking = await self._reranking(rerank, query)
        space = await self.active_space()
        vector = (await self._vectors_in(space, [query], [embedding], [["body", "embedding"]]))[0]
        await self._ensure_loaded(space, user_id)
        if space.index.size(user_id) == 0:
            return []
        allow = None if filters.empty else await self.store.filter_ids(user_id, filters)
        if allow is not None and not allow:
            return []
        k = self.rerank_policy.pool(limit) if reranking else limit
        hits = await space.searcher.search(user_id, vector, k, allow=allow)
        if threshold is not None:
            hits = [hit for hit in hits if hit.score >= threshold]
        found = await self.store.get_many([hit.id for hit in hits])
        scored = [ScoredMemory(found[h.id], h.score, h.score) for h in hits if h.id in found]
        if not reranking:
            return scored
        assert self.reranker is not None and query is not None
        try:
            return await rerank_candidates(self.reranker, query, scored, limit)
        except Conflict:  # the reranker went away since we looked
            if rerank is not None:
                raise  # asked for explicitly: say so (409)
            return scored[:limit]  # the default applies only while a reranker is served

    async def _reranking(self, asked: bool | None, query: str | None) -> bool:
        """Whether a search reranks. An explicit ``true`` is honoured or refused (422 without a
        text query, 409 without a served reranker); the default applies only where it can."""
        if asked is None:
            return (self.rerank_policy.default and query is not None
                    and self.reranker is not None and await self.reranker.available())
        if not asked:
            return False
        if query is None:
            raise InvalidInput({"loc": ["body", "rerank"], "msg": "re-ranking needs a text "
                                "'query'; a cross-encoder cannot read an 'embedding'"})
        if self.reranker is None:
            raise Conflict(NOT_LOADED)
        await self.reranker.require()
        return True


def _index_rows(index: VectorIndex, users: list[str], ids: list[str], vectors: np.ndarray) -> None:
    """Add rows to an index, one call per user partition."""
    by_user: dict[str, list[int]] = {}
    for position, user in enumerate(users):
        by_user.setdefault(user, []).append(position)
    for user, positions in by_user.items():
        index.add(user, [ids[p] for p in positions], vectors[positions])
