"""The memory service: every rule about adding, finding, changing and forgetting memories.

Order of truth: a change is committed to the store first, then mirrored into the index, both
under one mutation lock so the index never disagrees with the store. Embedding (the slow part)
happens before the lock, so concurrent writers still share Triton batches.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.index import VectorIndex
from gateway.index.batcher import SearchBatcher
from gateway.inference import EmbedderClient, ModelInfo, RerankerClient
from gateway.inference.coalescer import EmbedCoalescer
from gateway.inference.local_encoder import LocalEncoderUnavailable, LocalQueryEncoder
from gateway.inference.query_cache import QueryCache
from gateway.inference.reranker import NOT_LOADED
from gateway.memory.archived import exact_cosines, merge_ranked
from gateway.memory.conversation import attributed
from gateway.memory.dedup import DedupPolicy
from gateway.memory.duplicates import find_duplicates
from gateway.memory.fusion import fuse
from gateway.memory.ids import parse_id, uuid7
from gateway.memory.model import (
    HistoryEvent,
    Memory,
    ScoredMemory,
    SearchFilters,
    StoredMemory,
)
from gateway.memory.ranking import RankingPolicy, cosine_relevance, logit_relevance, rank, unchanged
from gateway.memory.rerank import RerankPolicy, rerank_candidates
from gateway.memory.search import (
    MAX_SKIPPED_EXPIRED,
    SearchMode,
    SearchOutcome,
    SearchPolicy,
    resolve_mode,
)
from gateway.memory.writeplan import Draft, Outcome
from gateway.memory.writeplan import plan as plan_writes
from gateway.store import Store
from gateway.store.archive import ArchiveStore, Fold
from gateway.store.ingest import Change, IngestStore, StaleWrite, WritePlan
from gateway.store.sqlite import ListOrder
from gateway.versions.active import ActiveModels, Space

DEFAULT_PRIORITY = 5
# Writes with at most this many texts to embed share the query twin's coalesced requests (no
# batcher stall); larger ones go to the batching model, where Triton merges them.
SMALL_WRITE_TEXTS = 8
# Background writes (consolidation jobs) embed in sequential requests of this many texts: each
# request gets the whole inference timeout, and interactive requests get Triton in between.
BACKGROUND_EMBED_TEXTS = 16


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
    role: str | None = None  # a message's role (user, assistant, ...), for conversation ingest
    speaker: str | None = None  # a message's speaker name
    context: str | None = None  # a message's neighbours, for keyword search (conversation.py)


class Keep(enum.Enum):
    """A change that leaves a field as it is (where None would mean: clear it)."""

    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class MemoryChanges:
    text: str | None = None
    metadata: dict[str, Any] | None = None
    priority: int | None = None
    occurred_at: str | None = None  # UTC ISO-8601 (None: unchanged)
    expires_at: str | None | Keep = Keep.KEEP  # None clears it


def encode_cursor(memory_id: str) -> str:
    return base64.urlsafe_b64encode(memory_id.encode()).decode().rstrip("=")


def encode_occurred_cursor(memory: Memory) -> str:
    return encode_cursor(f"{memory.occurred_at}|{memory.id}")


def decode_occurred_cursor(cursor: str) -> tuple[str, str]:
    """(occurred_at, id) of the last row of a page listed by occurrence."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        occurred, raw_id = raw.split("|")
        datetime.fromisoformat(occurred.replace("Z", "+00:00"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        occurred, raw_id = "", ""
    memory_id = parse_id(raw_id)
    if memory_id is None:
        raise InvalidInput({"loc": ["query", "cursor"], "msg": "invalid cursor"})
    return occurred, memory_id


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
        search_policy: SearchPolicy | None = None,
        models: ActiveModels | None = None,
        query_cache: QueryCache | None = None,
        local_encoder: LocalQueryEncoder | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.rerank_policy = rerank_policy or RerankPolicy()
        self.search_policy = search_policy or SearchPolicy()
        # Which version serves: owned by ActiveModels, written only by the version manager.
        self.models = models or ActiveModels(index, searcher or SearchBatcher(index))
        self.query_cache = query_cache if query_cache is not None else QueryCache(0)
        self.coalescer = EmbedCoalescer(self._embed_named)
        # Embeds search queries in the gateway when the active version's files allow it.
        self.local_encoder = local_encoder
        self.index_built = False
        self.mutation = asyncio.Lock()

    # Read-only views of the active state (the version manager changes it via ``models``).
    @property
    def index(self) -> VectorIndex:
        return self.models.index

    @property
    def searcher(self) -> SearchBatcher:
        return self.models.searcher

    @property
    def target(self) -> Space | None:
        return self.models.target

    @property
    def generation(self) -> int:
        return self.models.generation

    @property
    def active(self) -> Space | None:
        return self.models.active

    async def active_space(self) -> Space:
        """The active space; 503 until the version manager has connected to Triton."""
        return self.models.require()

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
        locs: list[list[str | int]], *, query: bool = False, background: bool = False,
    ) -> np.ndarray:
        """Client vectors where given, one Triton request (to ``space``'s version) for the rest.

        ``query``: a search's text, embedded by the batcher-free twin when Triton serves it.
        ``background``: a job's write, embedded in small sequential requests.
        """
        out = np.zeros((len(texts), space.info.dim), dtype=np.float32)
        missing = []
        for i, values in enumerate(supplied):
            if values is None:
                missing.append(i)
            else:
                out[i] = self._client_vector(space.info, values, locs[i])
        if missing and query:
            out[missing] = [await self._query_vector(space, texts[i] or "") for i in missing]
        elif missing and background:
            for start in range(0, len(missing), BACKGROUND_EMBED_TEXTS):
                chunk = missing[start:start + BACKGROUND_EMBED_TEXTS]
                out[chunk] = await self.embedder.embed([texts[i] or "" for i in chunk],
                                                       version=space.info.version)
        elif missing:
            out[missing] = await self._embed_write(space, [texts[i] or "" for i in missing])
        return out

    async def _embed_named(self, texts: list[str], version: str, model: str) -> np.ndarray:
        return await self.embedder.embed(texts, version, model=model)

    def _twin_for(self, space: Space) -> str | None:
        """The batcher-free twin when it serves ``space``'s version (the active one)."""
        active = self.models.info
        if active is None or space.info.label != active.label:
            return None
        return self.models.query_model

    async def _embed_write(self, space: Space, texts: list[str]) -> np.ndarray:
        twin = self._twin_for(space)
        if twin is not None and len(texts) <= SMALL_WRITE_TEXTS:
            return await self.coalescer.embed(texts, space.info.version, twin)
        return await self.embedder.embed(texts, version=space.info.version)

    def query_encoder(self, space: Space) -> str:
        """Where ``space``'s search queries are embedded: ``local``, the twin or the model."""
        encoder = self.local_encoder
        if encoder is not None and encoder.serves(space.info.version):
            return "local"
        return self._twin_for(space) or self.embedder.model

    async def _query_vector(self, space: Space, text: str) -> np.ndarray:
        """A search text's vector: from the query cache, else embedded in the gateway, else
        by the batcher-free twin (coalesced with concurrent queries), else by the batching
        model."""
        cached = self.query_cache.get(space.info.label, text)
        if cached is not None:
            return cached
        vector = await self._embed_query(space, text)
        self.query_cache.put(space.info.label, text, vector)
        return vector

    async def _embed_query(self, space: Space, text: str) -> np.ndarray:
        encoder = self.query_encoder(space)
        if encoder == "local":
            assert self.local_encoder is not None
            try:
                [vector] = await self.local_encoder.embed([text], space.info.version)
                return vector
            except LocalEncoderUnavailable:
                encoder = self._twin_for(space) or self.embedder.model
        if encoder == self.embedder.model:
            [vector] = await self.embedder.embed([text], version=space.info.version)
        else:
            [vector] = await self.coalescer.embed([text], space.info.version, encoder)
        return vector

    async def _write_vectors(
        self, texts: list[str], supplied: list[list[float] | None], locs: list[list[str | int]],
        *, background: bool = False,
    ) -> _Vectors:
        """Vectors for a write, in every live space: client vectors belong to the active space
        only, so the migration target always gets the server's embedding of the text."""
        generation = self.generation
        active, target = await self.active_space(), self.target
        if target is None:
            return _Vectors(generation, active, await self._vectors_in(
                active, texts, supplied, locs, background=background))
        vectors, target_vectors = await asyncio.gather(
            self._vectors_in(active, texts, supplied, locs, background=background),
            self._vectors_in(target, texts, [None] * len(texts), locs, background=background),
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
            made = await self._write_vectors([attributed(d.text, d.speaker) for d in drafts],
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
                        role=draft.role, speaker=draft.speaker,
                    )
                    items.append(StoredMemory(memory, vector, draft.context))
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

    async def ingest(self, drafts: list[Draft], policy: DedupPolicy, *,
                     field: str = "items") -> list[Outcome]:
        """Write drafts, each one an ADD, or an UPDATE/NOOP of the memory it duplicates (see
        ``gateway.memory.writeplan``): all or none, results in input order.

        Duplicates are looked for under the mutation lock, so two concurrent adds of one text
        cannot both ADD; embedding happens before it, as for ``add_many``.
        """
        locs: list[list[str | int]] = [
            ["body", "items", i, "embedding"] if field == "items" else ["body", "embedding"]
            for i in range(len(drafts))
        ]
        users = sorted({d.memory.user_id for d in drafts if d.dedup})
        for _ in range(3):  # a space switch between embedding and commit means: embed again
            made = await self._write_vectors([attributed(d.memory.text, d.memory.speaker)
                                              for d in drafts],
                                             [d.memory.embedding for d in drafts], locs)
            for user in users:
                await self._ensure_loaded(made.active, user)
            async with self.mutation:
                if made.generation != self.generation:
                    continue
                now = utc_now()
                matches = await find_duplicates(self.store, made.active.index, drafts,
                                                 made.vectors, policy, now)
                write, outcomes, created = plan_writes(
                    drafts, matches, made.vectors, [uuid7() for _ in drafts],
                    made.active.info.label, now)
                if made.target is not None and made.target_vectors is not None:
                    write.shadows = [(made.target.info.label, made.target_vectors[j])
                                     for j in created]
                try:
                    await IngestStore(self.store).apply(write)
                except StaleWrite as exc:  # only writes outside this service can cause it
                    raise Conflict(f"memory {exc} changed concurrently; retry") from exc
                if created:
                    ids = [write.inserts[n].memory.id for n in range(len(created))]
                    owners = [drafts[j].memory.user_id for j in created]
                    await asyncio.to_thread(_index_rows, made.active.index, owners, ids,
                                            made.vectors[created])
                    if made.target is not None and made.target_vectors is not None:
                        await asyncio.to_thread(_index_rows, made.target.index, owners, ids,
                                                made.target_vectors[created])
                return outcomes
        raise Conflict("the embedding model changed repeatedly during this request; retry")

    async def apply_inferred(
        self, adds: list[Draft], edits: list[tuple[Memory, str]], deletes: list[Memory],
        policy: DedupPolicy, payload: dict[str, Any],
    ) -> tuple[list[Outcome], list[Memory]]:
        """Apply an LLM's decision set in one transaction: new memories (deduplicated like
        any add), text edits (re-embedded) and deletes. Returns the adds' outcomes and the
        edited memories; raises ``Conflict`` when a memory changed since the LLM saw it."""
        texts = [d.memory.text for d in adds] + [text for _, text in edits]
        supplied: list[list[float] | None] = [None] * len(texts)
        locs: list[list[str | int]] = [["body", "messages"]] * len(texts)
        users = sorted({d.memory.user_id for d in adds})
        for _ in range(3):
            made = await self._write_vectors(texts, supplied, locs)
            for user in users:
                await self._ensure_loaded(made.active, user)
            async with self.mutation:
                if made.generation != self.generation:
                    continue
                now, label = utc_now(), made.active.info.label
                vectors = made.vectors[: len(adds)]
                matches = await find_duplicates(self.store, made.active.index, adds, vectors,
                                                policy, now)
                write, outcomes, created = plan_writes(adds, matches, vectors,
                                                       [uuid7() for _ in adds], label, now)
                edited = []
                for n, (memory, text) in enumerate(edits):
                    updated = replace(memory, text=text, embedding_model=label,
                                      updated_at=max(now, memory.updated_at))
                    shadow = None
                    if made.target is not None and made.target_vectors is not None:
                        shadow = (made.target.info.label, made.target_vectors[len(adds) + n])
                    write.changes.append(Change(memory, StoredMemory(
                        updated, made.vectors[len(adds) + n]), {}, shadow))
                    edited.append(updated)
                if made.target is not None and made.target_vectors is not None:
                    write.shadows = [(made.target.info.label, made.target_vectors[j])
                                     for j in created]
                write.deletes, write.payload, write.at = list(deletes), payload, now
                try:
                    await IngestStore(self.store).apply(write)
                except StaleWrite as exc:
                    raise Conflict(f"memory {exc} changed meanwhile") from exc
                await self._mirror(made, write, created, len(adds))
                return outcomes, edited
        raise Conflict("the embedding model changed repeatedly during this request; retry")

    async def consolidate(self, write: WritePlan) -> None:
        """Commit a consolidation job's plan for one user (metadata changes and deletes, no
        new vectors) and drop the deleted rows from the indexes; ``Conflict`` when a memory
        changed since the job read it (nothing is written then)."""
        async with self.mutation:
            try:
                await IngestStore(self.store).apply(write)
            except StaleWrite as exc:
                raise Conflict(f"memory {exc} changed meanwhile") from exc
            for memory in write.deletes:
                for index in self._indexes():
                    await asyncio.to_thread(index.remove, memory.user_id, [memory.id])

    async def fold(self, summaries: list[Memory], sources: list[list[Memory]],
                   payloads: list[dict[str, Any]], *,
                   vectors: list[list[float] | None] | None = None,
                   vectors_label: str | None = None) -> list[Memory]:
        """Write summaries and archive their sources, in one transaction (see
        ``gateway.store.archive``); the sources leave the indexes, the summaries enter them.
        ``vectors``: a summary's vector in space ``vectors_label`` where the job has one (None:
        its text is embedded here, as are all when that space is no longer the active one).
        ``Conflict`` when a source changed since the job read it (nothing is written)."""
        texts = [s.text for s in summaries]
        for _ in range(3):  # a space switch between embedding and commit means: embed again
            active = await self.active_space()
            supplied: list[list[float] | None] = (
                vectors if vectors is not None and vectors_label == active.info.label
                else [None] * len(texts))
            made = await self._write_vectors(texts, supplied, [["summary"]] * len(texts),
                                             background=True)
            async with self.mutation:
                if made.generation != self.generation or (
                        supplied is vectors and made.active.info.label != vectors_label):
                    continue
                now, label = utc_now(), made.active.info.label
                written = [replace(s, embedding_model=label) for s in summaries]
                folds = [Fold(StoredMemory(summary, made.vectors[n]), sources[n], payloads[n],
                              None if made.target is None or made.target_vectors is None
                              else (made.target.info.label, made.target_vectors[n]))
                         for n, summary in enumerate(written)]
                try:
                    await ArchiveStore(self.store).fold(folds, now)
                except StaleWrite as exc:
                    raise Conflict(f"memory {exc} changed meanwhile") from exc
                users, ids = [s.user_id for s in written], [s.id for s in written]
                await asyncio.to_thread(_index_rows, made.active.index, users, ids, made.vectors)
                if made.target is not None and made.target_vectors is not None:
                    await asyncio.to_thread(_index_rows, made.target.index, users, ids,
                                            made.target_vectors)
                for group in sources:
                    for index in self._indexes():
                        await asyncio.to_thread(index.remove, group[0].user_id,
                                                [m.id for m in group])
                return written
        raise Conflict("the embedding model changed repeatedly during this job; retry")

    async def _mirror(self, made: _Vectors, write: WritePlan, created: list[int],
                      first_edit: int) -> None:
        """Bring the indexes in step with a committed write plan (under the mutation lock)."""
        spaces = [(made.active.index, made.vectors)]
        if made.target is not None and made.target_vectors is not None:
            spaces.append((made.target.index, made.target_vectors))
        for index, vectors in spaces:
            if created:
                await asyncio.to_thread(_index_rows, index, [i.memory.user_id for i in
                                                             write.inserts],
                                        [i.memory.id for i in write.inserts], vectors[created])
            edits = [c for c in write.changes if isinstance(c.updated, StoredMemory)]
            if edits:
                rows = list(range(first_edit, first_edit + len(edits)))
                await asyncio.to_thread(_index_rows, index,
                                        [c.previous.user_id for c in edits],
                                        [c.previous.id for c in edits], vectors[rows])
        for memory in write.deletes:
            for index in self._indexes():
                await asyncio.to_thread(index.remove, memory.user_id, [memory.id])

    async def update(self, memory_id: str, changes: MemoryChanges) -> Memory:
        for _ in range(3):
            previous = await self.get(memory_id)
            updated = replace(
                previous,
                text=changes.text if changes.text is not None else previous.text,
                metadata=changes.metadata if changes.metadata is not None else previous.metadata,
                priority=changes.priority if changes.priority is not None else previous.priority,
                occurred_at=changes.occurred_at or previous.occurred_at,
                expires_at=(previous.expires_at if changes.expires_at is Keep.KEEP
                            else changes.expires_at),
                updated_at=max(utc_now(), previous.updated_at),
            )
            made = None
            if updated.text != previous.text:
                made = await self._write_vectors([attributed(updated.text, updated.speaker)],
                                                  [None], [["body", "text"]])
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
                if made is not None and updated.archived_at is None:  # archived: not indexed
                    await asyncio.to_thread(made.active.index.add, updated.user_id,
                                            [updated.id], made.vectors[:1])
                    if made.target is not None and made.target_vectors is not None:
                        await asyncio.to_thread(made.target.index.add, updated.user_id,
                                                [updated.id], made.target_vectors[:1])
                return updated
        raise Conflict("the embedding model changed repeatedly during this request; retry")

    def _indexes(self) -> list[VectorIndex]:
        return self.models.indexes()

    async def delete(self, memory_id: str) -> None:
        """Delete a memory; deleting a summary restores its archived sources (see
        ``Store.delete_rows``)."""
        async with self.mutation:
            deleted = await self.store.delete(memory_id, utc_now())
            if deleted is None:
                raise NotFound(f"memory {memory_id} not found")
            memory, restored = deleted
            for index in self._indexes():
                await asyncio.to_thread(index.remove, memory.user_id, [memory_id])
            await self._reindex(restored)

    async def expire(self, user_id: str) -> int:
        """Delete the user's expired memories (the ``expire`` job); how many."""
        async with self.mutation:
            expired, restored = await ArchiveStore(self.store).delete_expired(user_id,
                                                                           utc_now())
            for index in self._indexes():
                await asyncio.to_thread(index.remove, user_id, [m.id for m in expired])
            await self._reindex(restored)
        return len(expired)

    async def _reindex(self, restored: list[StoredMemory]) -> None:
        """Put restored (no longer archived) memories back into the active index, where their
        stored vector is in the active model's space (under the mutation lock)."""
        active = self.active
        rows = [r for r in restored if active is not None
                and r.memory.embedding_model == active.info.label]
        if rows and active is not None:
            await asyncio.to_thread(_index_rows, active.index, [r.memory.user_id for r in rows],
                                    [r.memory.id for r in rows],
                                    np.stack([r.embedding for r in rows]))

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
        self, user_id: str, limit: int, cursor: str | None, *, order_by: ListOrder = "id",
        descending: bool = False, include_expired: bool = False, include_archived: bool = False,
    ) -> tuple[list[Memory], str | None]:
        """A page of the user's memories in id (creation) or occurrence order; the cursor
        only continues a listing in the same order. Archived memories only when asked."""
        after, occurred = None, None
        if cursor and order_by == "occurred_at":
            occurred, after = decode_occurred_cursor(cursor)
        elif cursor:
            after = decode_cursor(cursor)
        rows = await self.store.list_page(
            user_id, limit + 1, after, order_by=order_by, after_occurred=occurred,
            descending=descending, live_at=None if include_expired else utc_now(),
            archived=include_archived,
        )
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = (encode_occurred_cursor(last) if order_by == "occurred_at"
                           else encode_cursor(last.id))
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
        mode: SearchMode | None = None,
        ranking: RankingPolicy | None = None,
        include_expired: bool = False,
        include_archived: bool = False,
    ) -> list[ScoredMemory]:
        """The user's memories that best answer the query, best first (see ``search_outcome``)."""
        outcome = await self.search_outcome(
            user_id, query=query, embedding=embedding, limit=limit, filters=filters,
            threshold=threshold, rerank=rerank, mode=mode, ranking=ranking,
            include_expired=include_expired, include_archived=include_archived,
        )
        return outcome.results

    async def search_outcome(
        self,
        user_id: str,
        *,
        query: str | None,
        embedding: list[float] | None,
        limit: int,
        filters: SearchFilters,
        threshold: float | None,
        rerank: bool | None = None,
        mode: SearchMode | None = None,
        ranking: RankingPolicy | None = None,
        include_expired: bool = False,
        include_archived: bool = False,
    ) -> SearchOutcome:
        """Search in ``mode`` (None: the policy's), rerank, rank; see ``gateway.memory.search``.

        ``rerank`` (None: the policy's default, applied only when a reranker is served) orders
        the candidate pool with the cross-encoder. ``threshold`` bounds the cosine
        ``similarity`` in every mode, before re-ranking. ``ranking`` (None: the policy's)
        weighs recency and priority. Expired and archived memories are left out unless asked
        for (archived ones are then scored exactly: ``gateway.memory.archived``).
        """
        used = resolve_mode(mode or self.search_policy.mode, query, embedding,
                            lexical=self.search_policy.lexical)
        reranking = await self._reranking(rerank, query)
        policy = self.search_policy.ranking if ranking is None else ranking
        now = utc_now()
        if not include_expired:
            filters = replace(filters, live_at=now)
        pool = limit
        if used == "hybrid" or policy.active:
            pool = max(pool, self.search_policy.fusion.pool(limit))
        if reranking:
            pool = max(pool, self.rerank_policy.pool(limit))
        space = await self.active_space() if used != "keyword" or threshold is not None else None

        async def dense() -> tuple[np.ndarray | None, list[tuple[str, float]]]:
            if space is None:
                return None, []
            vector_and_skip = await asyncio.gather(
                self._vectors_in(space, [query], [embedding], [["body", "embedding"]],
                                 query=True),
                self._vector_scope(space, user_id, filters) if used != "keyword"
                else _nothing(),
            )
            vector = vector_and_skip[0][0]
            scope = vector_and_skip[1]
            if used == "keyword" or scope is None:
                return vector, []
            allow, skip = scope
            hits = await space.searcher.search(user_id, vector, pool + len(skip), allow=allow)
            return vector, [(h.id, h.score) for h in hits if h.id not in skip][:pool]

        async def lexical() -> list[tuple[str, float]]:
            if used == "semantic" or query is None:
                return []
            return await self.store.keyword_search(
                user_id, query, pool, filters, date_weight=self.search_policy.date_weight,
                context_weight=self.search_policy.context_weight)

        (vector, semantic), keyword = await asyncio.gather(dense(), lexical())
        if include_archived:
            semantic, keyword = await self._with_archived(
                user_id, query, vector, space, filters, pool, used, semantic, keyword)
        if used == "hybrid":
            ranked = fuse(semantic, keyword, self.search_policy.fusion)
        else:
            ranked = list(semantic if used == "semantic" else keyword)
        keep = pool if reranking or policy.active else limit  # candidates the next steps see
        similarity = dict(semantic)
        if space is not None and vector is not None:  # cosines of keyword-only candidates
            unscored = [i for i, _ in (ranked if threshold is not None else ranked[:keep])
                        if i not in similarity]
            similarity.update(await self._cosines(space, vector, unscored))
        if threshold is not None:
            ranked = [(i, s) for i, s in ranked if similarity.get(i, -2.0) >= threshold]
        ranked = ranked[:keep]
        found = await self.store.get_many([i for i, _ in ranked])
        keyword_scores = dict(keyword)
        scored = [ScoredMemory(found[i], score, similarity.get(i), keyword_scores.get(i))
                  for i, score in ranked if i in found]
        relevance = cosine_relevance if used == "semantic" else unchanged
        if reranking:
            assert self.reranker is not None and query is not None
            try:
                scored = await rerank_candidates(self.reranker, query, scored,
                                                 len(scored) if policy.active else limit)
                relevance = logit_relevance
            except Conflict:  # the reranker went away since we looked
                if rerank is not None:
                    raise  # asked for explicitly: say so (409)
        if policy.active:
            scored = rank(scored, policy, _parse_time(now), relevance)
        return SearchOutcome(scored[:limit], used)

    async def _with_archived(
        self, user_id: str, query: str | None, vector: np.ndarray | None, space: Space | None,
        filters: SearchFilters, pool: int, used: SearchMode,
        semantic: list[tuple[str, float]], keyword: list[tuple[str, float]],
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """Both candidate lists with the archived memories' hits merged in by score."""
        if used != "keyword" and vector is not None and space is not None:
            rows = await ArchiveStore(self.store).archived_vectors(user_id, filters)
            found = await asyncio.to_thread(exact_cosines, rows, space.info.label, vector, pool)
            semantic = merge_ranked(semantic, found, pool)
        if used != "semantic" and query is not None:
            archived = await self.store.keyword_search(
                user_id, query, pool, filters, date_weight=self.search_policy.date_weight,
                context_weight=self.search_policy.context_weight, archived=True)
            keyword = merge_ranked(keyword, archived, pool)
        return semantic, keyword

    async def _vector_scope(
        self, space: Space, user_id: str, filters: SearchFilters
    ) -> tuple[set[str] | None, set[str]] | None:
        """What a vector search may return: (allow-list or None for all, ids to skip after);
        None when nothing can match. Expired memories are skipped after the search while they
        are few (a partial index finds them), pre-filtered when there are many."""
        await self._ensure_loaded(space, user_id)
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
            raise InvalidInput({"loc": ["body", "rerank"], "msg": "re-ranking needs a text "
                                "'query'; a cross-encoder cannot read an 'embedding'"})
        if self.reranker is None:
            raise Conflict(NOT_LOADED)
        await self.reranker.require()
        return True


async def _nothing() -> None:
    return None


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _index_rows(index: VectorIndex, users: list[str], ids: list[str], vectors: np.ndarray) -> None:
    """Add rows to an index, one call per user partition."""
    by_user: dict[str, list[int]] = {}
    for position, user in enumerate(users):
        by_user.setdefault(user, []).append(position)
    for user, positions in by_user.items():
        index.add(user, [ids[p] for p in positions], vectors[positions])
