"""The memory service: every rule about adding, finding, changing and forgetting memories.

Order of truth: a change is committed to the store first, then mirrored into the index, both
under one mutation lock so the index never disagrees with the store. Embedding (the slow part)
happens before the lock, so concurrent writers still share Triton batches.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.index import VectorIndex
from gateway.index.batcher import SearchBatcher
from gateway.inference import EmbedderClient
from gateway.memory.ids import parse_id, uuid7
from gateway.memory.model import (
    HistoryEvent,
    Memory,
    ScoredMemory,
    SearchFilters,
    StoredMemory,
)
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


class MemoryService:
    def __init__(
        self, store: Store, index: VectorIndex, embedder: EmbedderClient,
        searcher: SearchBatcher | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.searcher = searcher or SearchBatcher(index)
        self.embedder = embedder
        self.index_built = False
        self._mutation = asyncio.Lock()

    # -- start-up -----------------------------------------------------------------------------
    async def build_index(self) -> int:
        """Load every stored vector into the index (the store is the truth; this is a cache)."""
        rows = await self.store.vectors()
        count = await asyncio.to_thread(self.index.rebuild, rows)
        self.index_built = True
        return count

    async def _ensure_loaded(self, user_id: str) -> None:
        """Bring an evicted partition back from the store (only with a RAM budget).

        Under the mutation lock, so no write can commit between the store read and the load.
        """
        if not self.index.needs_load(user_id):
            return
        async with self._mutation:
            if self.index.needs_load(user_id):
                ids, vectors = await self.store.user_vectors(user_id)
                self.index.load(user_id, ids, vectors)

    # -- vectors --------------------------------------------------------------------------------
    def _client_vector(self, values: list[float], field: list[str | int]) -> np.ndarray:
        info = self.embedder.info
        assert info is not None, "embedder not discovered"
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

    async def _vectors_for(
        self, texts: list[str | None], supplied: list[list[float] | None], field: str
    ) -> np.ndarray:
        """Client vectors where given, one Triton request for all the others."""
        if self.embedder.info is None:
            await self.embedder.discover()
        assert self.embedder.info is not None
        out = np.zeros((len(texts), self.embedder.info.dim), dtype=np.float32)
        missing = []
        for i, values in enumerate(supplied):
            if values is None:
                missing.append(i)
            else:
                loc: list[str | int] = ["body", "items", i, "embedding"] if field == "items" else [
                    "body", "embedding"]
                out[i] = self._client_vector(values, loc)
        if missing:
            out[missing] = await self.embedder.embed([texts[i] or "" for i in missing])
        return out

    # -- writes ---------------------------------------------------------------------------------
    async def add_many(self, drafts: list[NewMemory], *, field: str = "items") -> list[Memory]:
        """Store all drafts or none; results come back in input order."""
        vectors = await self._vectors_for(
            [d.text for d in drafts], [d.embedding for d in drafts], field
        )
        assert self.embedder.info is not None
        label = self.embedder.info.label
        items = []
        for draft, vector in zip(drafts, vectors, strict=True):
            now = utc_now()
            memory = Memory(
                id=uuid7(), user_id=draft.user_id, text=draft.text, agent_id=draft.agent_id,
                run_id=draft.run_id, metadata=draft.metadata or {}, priority=draft.priority,
                created_at=now, updated_at=now, embedding_model=label,
            )
            items.append(StoredMemory(memory, vector))
        async with self._mutation:
            await self.store.insert_many(items)
            by_user: dict[str, list[StoredMemory]] = {}
            for item in items:
                by_user.setdefault(item.memory.user_id, []).append(item)
            for user_id, group in by_user.items():
                self.index.add(
                    user_id, [g.memory.id for g in group], np.stack([g.embedding for g in group])
                )
        return [item.memory for item in items]

    async def update(self, memory_id: str, changes: MemoryChanges) -> Memory:
        previous = await self.get(memory_id)
        updated = replace(
            previous,
            text=changes.text if changes.text is not None else previous.text,
            metadata=changes.metadata if changes.metadata is not None else previous.metadata,
            priority=changes.priority if changes.priority is not None else previous.priority,
            updated_at=max(utc_now(), previous.updated_at),
        )
        vector = None
        if updated.text != previous.text:
            vector = (await self._vectors_for([updated.text], [None], "text"))[0]
            assert self.embedder.info is not None
            updated = replace(updated, embedding_model=self.embedder.info.label)
        async with self._mutation:
            target = StoredMemory(updated, vector) if vector is not None else updated
            if not await self.store.update(target, previous):
                if await self.store.get(memory_id) is None:
                    raise NotFound(f"memory {memory_id} not found")
                raise Conflict(f"memory {memory_id} changed concurrently; retry the update")
            if vector is not None:
                self.index.add(updated.user_id, [updated.id], vector[None, :])
        return updated

    async def delete(self, memory_id: str) -> None:
        async with self._mutation:
            memory = await self.store.delete(memory_id, utc_now())
            if memory is None:
                raise NotFound(f"memory {memory_id} not found")
            self.index.remove(memory.user_id, [memory_id])

    async def delete_user(self, user_id: str) -> int:
        async with self._mutation:
            ids = await self.store.delete_user(user_id, utc_now())
            self.index.drop(user_id)
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
    ) -> list[ScoredMemory]:
        """The user's memories closest in meaning to the query, best first."""
        vector = (await self._vectors_for([query], [embedding], "embedding"))[0]
        await self._ensure_loaded(user_id)
        if self.index.size(user_id) == 0:
            return []
        allow = None if filters.empty else await self.store.filter_ids(user_id, filters)
        if allow is not None and not allow:
            return []
        hits = await self.searcher.search(user_id, vector, limit, allow=allow)
        if threshold is not None:
            hits = [hit for hit in hits if hit.score >= threshold]
        found = await self.store.get_many([hit.id for hit in hits])
        return [ScoredMemory(found[h.id], h.score) for h in hits if h.id in found]
