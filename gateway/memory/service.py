"""The memory service: every rule about adding, finding, changing and forgetting memories.

Order of truth: a change is committed to the store first, then mirrored into the index, both
under one mutation lock so the index never disagrees with the store. Embedding (the slow part)
happens before the lock, so concurrent writers still share Triton batches. Where vectors come
from: ``gateway.memory.vectors``; how a search runs: ``gateway.memory.pipeline``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Generic, Protocol, TypeVar, cast

import numpy as np

from gateway.domain.model import HistoryEvent, Memory, ScoredMemory, StoredMemory
from gateway.errors import Conflict, FieldPath, NotFound
from gateway.index.base import VectorIndex
from gateway.index.batcher import SearchBatcher
from gateway.inference.client import EmbedderClient
from gateway.inference.local_encoder import LocalQueryEncoder
from gateway.inference.query_cache import QueryCache
from gateway.inference.reranker import RerankerClient
from gateway.memory.changes import Keep, MemoryChanges, NewMemory
from gateway.memory.clock import utc_now
from gateway.memory.conversation import attributed
from gateway.memory.cursors import (
    decode_cursor,
    decode_occurred_cursor,
    encode_cursor,
    encode_occurred_cursor,
)
from gateway.memory.dedup import DedupPolicy
from gateway.memory.duplicates import find_duplicates
from gateway.memory.ids import uuid7
from gateway.memory.pipeline import SearchPipeline
from gateway.memory.rerank import RerankPolicy
from gateway.memory.search import SearchOutcome, SearchPolicy, SearchQuery
from gateway.memory.vectors import Texts, VectorSource, WriteVectors
from gateway.memory.writeplan import Draft, Outcome
from gateway.memory.writeplan import plan as plan_writes
from gateway.store.base import Store
from gateway.store.types import (
    Change,
    Erased,
    Fold,
    ListOrder,
    StaleVersion,
    StaleWrite,
    WritePlan,
)
from gateway.versions.active import ActiveModels, Space
from gateway.write_first import WriteFirst

__all__ = ["MemoryService", "utc_now"]

_T = TypeVar("_T")
_E = TypeVar("_E", bound="_Embedded")


class _Embedded(Protocol):
    """What a write prepared before the lock; ``generation`` None: it made no vectors."""

    @property
    def generation(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class _Edit:
    """An update, prepared: the memory as read, as it will be, and its new text's vectors."""

    previous: Memory
    updated: Memory
    made: WriteVectors | None

    @property
    def generation(self) -> int | None:
        return None if self.made is None else self.made.generation


class _OfModels(Generic[_T]):
    """A read-only attribute of the service that is the same-named one of its ``models``."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, service: MemoryService, owner: type | None = None) -> _T:
        return cast(_T, getattr(service.models, self.name))


def _embedding_fields(count: int, single: bool) -> list[FieldPath]:
    """Where each draft's client vector sits in the request: one add, or a batch's items."""
    return [("embedding",) if single else ("items", i, "embedding") for i in range(count)]


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
        write_first: WriteFirst | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.rerank_policy = rerank_policy or RerankPolicy()
        self.search_policy = search_policy or SearchPolicy()
        # Which version serves: owned by ActiveModels, written only by the version manager.
        self.models = models or ActiveModels(index, searcher or SearchBatcher(index))
        self.vectors = VectorSource(embedder, self.models, query_cache=query_cache,
                                    local_encoder=local_encoder)
        self.query_cache, self.local_encoder = self.vectors.query_cache, local_encoder
        # single writes go before searches' steps (start-up shares the gate with the store's
        # keyword queries); without one, off
        self.write_first = write_first or WriteFirst(0.0)
        self.searches = SearchPipeline(
            store, self.vectors, self.models, reranker=reranker,
            rerank_policy=self.rerank_policy, search_policy=self.search_policy,
            ensure_loaded=self.ensure_loaded, write_first=self.write_first)
        self.index_built = False
        self.mutation = asyncio.Lock()
        # Takes the model state another replica committed (the version manager's ``follow``,
        # wired at start-up); a write the store refused for its stale version calls it.
        self.follow_version: Callable[[], Awaitable[None]] | None = None

    # Read-only views of the active state (the version manager changes it via ``models``).
    index: _OfModels[VectorIndex] = _OfModels()
    searcher: _OfModels[SearchBatcher] = _OfModels()
    target: _OfModels[Space | None] = _OfModels()
    active: _OfModels[Space | None] = _OfModels()

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

    async def ensure_loaded(self, space: Space, user_id: str) -> None:
        """Bring an evicted partition back from the store (only with a RAM budget).

        Under the mutation lock, so no write can commit between the store read and the load.
        """
        if not space.index.needs_load(user_id):
            return
        async with self.mutation:
            if space.index.needs_load(user_id) and space.index is self.index:
                ids, vectors = await self.store.user_vectors(user_id)
                await asyncio.to_thread(space.index.load, user_id, ids, vectors)

    # -- the commit of every write, and the index mirror ---------------------------------------
    def exclusive(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The mutation lock: hold it to change the store and the indexes together."""
        return self.mutation

    async def _commit(self, embed: Callable[[], Awaitable[_E]],
                      apply: Callable[[_E], Awaitable[_T]], *, what: str = "request") -> _T:
        """Embed (before the lock), then ``apply`` under the mutation lock; a migration that
        began, ended or switched in between means: embed again. So does one that another
        replica made before this one followed it: the store refuses the write
        (``StaleVersion``), this replica follows, and the write goes again, once."""
        followed = False
        for _ in range(3):
            made = await embed()
            try:
                async with self.mutation:
                    if made.generation in (None, self.models.generation):
                        return await apply(made)
            except StaleVersion:
                if followed or self.follow_version is None:
                    break
                followed = True
                await self.follow_version()  # outside the lock: following takes it
        raise Conflict(f"the embedding model changed repeatedly during this {what}; retry")

    async def _embedded(self, request: Texts, users: Iterable[str] = ()) -> WriteVectors:
        """A write's vectors, with the partitions of ``users`` loaded (duplicates are looked
        for there)."""
        made = await self.vectors.for_write(request)
        for user in users:
            await self.ensure_loaded(made.active, user)
        return made

    async def _mirror(self, made: WriteVectors | None = None, placed: Sequence[Memory] = (),
                      rows: Sequence[int] = (), *, removed: Iterable[Memory] = (),
                      restored: Iterable[StoredMemory] = ()) -> None:
        """Bring the indexes in step with a committed write (under the mutation lock):
        ``placed`` memories enter every live space with row ``rows[n]`` of its vectors,
        ``removed`` ones leave every index, ``restored`` (no longer archived) ones re-enter the
        active index where their stored vector is in its space."""
        if made is not None and placed:
            users, ids = [m.user_id for m in placed], [m.id for m in placed]
            for space, vectors in made.spaces():
                await self.add_to_index(space.index, users, ids, vectors[list(rows)])
        gone: dict[str, list[str]] = {}
        for memory in removed:
            gone.setdefault(memory.user_id, []).append(memory.id)
        for user, ids in gone.items():
            for index in self.models.indexes():
                await asyncio.to_thread(index.remove, user, ids)
        active = self.active
        back = [r for r in restored if active is not None
                and r.memory.embedding_model == active.info.label]
        if back and active is not None:
            await self.add_to_index(active.index, [r.memory.user_id for r in back],
                                    [r.memory.id for r in back],
                                    np.stack([r.embedding for r in back]))

    @staticmethod
    async def add_to_index(index: VectorIndex, users: list[str], ids: list[str],
                           vectors: np.ndarray) -> None:
        """Add rows to an index, off the event loop (under ``exclusive``)."""
        if ids:
            await asyncio.to_thread(_index_rows, index, users, ids, vectors)

    async def _apply(self, write: WritePlan, stale: str = "changed meanwhile") -> None:
        try:
            await self.store.apply(write)
        except StaleWrite as exc:  # only writes outside this service can cause it
            raise Conflict(f"memory {exc} {stale}") from exc

    # -- writes ---------------------------------------------------------------------------------
    async def add_many(self, drafts: list[NewMemory], *, single: bool = False) -> list[Memory]:
        """Store all drafts or none; results come back in input order. ``single``: the drafts
        of one add (their vectors sit at the request's top), else a batch's items."""
        request = Texts([attributed(d.text, d.speaker) for d in drafts],
                        [d.embedding for d in drafts], _embedding_fields(len(drafts), single))
        return await self._commit(partial(self._embedded, request),
                                  partial(self._insert, drafts))

    async def _insert(self, drafts: list[NewMemory], made: WriteVectors) -> list[Memory]:
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
                modality="text" if draft.image is None else "image",
            )
            items.append(StoredMemory(memory, vector, draft.context, draft.image))
        await self.store.insert_many(items, made.shadows(range(len(items))))
        placed = [item.memory for item in items]
        await self._mirror(made, placed, range(len(placed)))
        return placed

    async def ingest(self, drafts: list[Draft], policy: DedupPolicy, *,
                     single: bool = False) -> list[Outcome]:
        """Write drafts, each one an ADD, or an UPDATE/NOOP of the memory it duplicates (see
        ``gateway.memory.writeplan``): all or none, results in input order.

        Duplicates are looked for under the mutation lock, so two concurrent adds of one text
        cannot both ADD; embedding happens before it, as for ``add_many``.
        """
        request = Texts([attributed(d.memory.text, d.memory.speaker) for d in drafts],
                        [d.memory.embedding for d in drafts],
                        _embedding_fields(len(drafts), single))
        users = sorted({d.memory.user_id for d in drafts if d.dedup})
        async with self._foreground(single):
            outcomes, _ = await self._commit(partial(self._embedded, request, users),
                                             partial(self._decide, drafts, policy, [], [], None))
        return outcomes

    def _foreground(self, single: bool) -> contextlib.AbstractAsyncContextManager[None]:
        """A single write goes before searches' next steps; a batch does not."""
        return self.write_first.writing() if single else contextlib.nullcontext()

    async def apply_inferred(
        self, adds: list[Draft], edits: list[tuple[Memory, str]], deletes: list[Memory],
        policy: DedupPolicy, payload: dict[str, Any],
    ) -> tuple[list[Outcome], list[Memory]]:
        """Apply an LLM's decision set in one transaction: new memories (deduplicated like
        any add), text edits (re-embedded) and deletes. Returns the adds' outcomes and the
        edited memories; raises ``Conflict`` when a memory changed since the LLM saw it."""
        request = Texts([d.memory.text for d in adds] + [text for _, text in edits])
        users = sorted({d.memory.user_id for d in adds})
        return await self._commit(partial(self._embedded, request, users),
                                  partial(self._decide, adds, policy, edits, deletes, payload))

    async def _decide(
        self, adds: list[Draft], policy: DedupPolicy, edits: list[tuple[Memory, str]],
        deletes: list[Memory], payload: dict[str, Any] | None, made: WriteVectors,
    ) -> tuple[list[Outcome], list[Memory]]:
        """Under the lock: find the adds' duplicates, plan and commit the adds, ``edits``
        (their vectors follow the adds') and ``deletes``. ``payload`` None: a plain ingest."""
        now, label = utc_now(), made.active.info.label
        vectors = made.vectors[: len(adds)]
        matches = await find_duplicates(self.store, made.active.index, adds, vectors, policy,
                                        now)
        write, outcomes, created = plan_writes(adds, matches, vectors,
                                               [uuid7() for _ in adds], label, now)
        edited, rows = [], list(range(len(adds), len(adds) + len(edits)))
        for row, (memory, text) in zip(rows, edits, strict=True):
            updated = replace(memory, text=text, embedding_model=label,
                              updated_at=max(now, memory.updated_at))
            write.changes.append(Change(memory, StoredMemory(updated, made.vectors[row]), {},
                                        made.shadow(row)))
            edited.append(updated)
        write.shadows = made.shadows(created)
        if payload is None:
            await self._apply(write, "changed concurrently; retry")
        else:
            write.deletes, write.payload, write.at = list(deletes), payload, now
            await self._apply(write)
        await self._mirror(made, [i.memory for i in write.inserts] + edited, created + rows,
                           removed=write.deletes)
        return outcomes, edited

    async def consolidate(self, write: WritePlan) -> None:
        """Commit a consolidation job's plan for one user (metadata changes and deletes, no
        new vectors) and drop the deleted rows from the indexes; ``Conflict`` when a memory
        changed since the job read it (nothing is written then)."""
        try:
            async with self.mutation:
                await self._apply(write)
                await self._mirror(removed=write.deletes)
        except StaleVersion as exc:  # read before a switch made elsewhere: the job reads again
            raise Conflict("the embedding model changed since the job read it") from exc

    async def fold(self, summaries: list[Memory], sources: list[list[Memory]],
                   payloads: list[dict[str, Any]], *,
                   vectors: list[list[float] | None] | None = None,
                   vectors_label: str | None = None) -> list[Memory]:
        """Write summaries and archive their sources, in one transaction (see
        ``gateway.store.sqlite.archive``); the sources leave the indexes, the summaries enter them.
        ``vectors``: a summary's vector in space ``vectors_label`` where the job has one (None:
        its text is embedded here, as are all when that space is no longer the active one).
        ``Conflict`` when a source changed since the job read it (nothing is written)."""
        request = Texts([s.text for s in summaries], vectors if vectors_label else None,
                        [("summary",)] * len(summaries), vectors_label, background=True)
        return await self._commit(partial(self.vectors.for_write, request),
                                  partial(self._fold, summaries, sources, payloads), what="job")

    async def _fold(self, summaries: list[Memory], sources: list[list[Memory]],
                    payloads: list[dict[str, Any]], made: WriteVectors) -> list[Memory]:
        written = [replace(s, embedding_model=made.active.info.label) for s in summaries]
        folds = [Fold(StoredMemory(summary, made.vectors[n]), sources[n], payloads[n],
                      made.shadow(n)) for n, summary in enumerate(written)]
        try:
            await self.store.fold(folds, utc_now())
        except StaleWrite as exc:
            raise Conflict(f"memory {exc} changed meanwhile") from exc
        await self._mirror(made, written, range(len(written)),
                           removed=[m for group in sources for m in group])
        return written

    async def update(self, memory_id: str, changes: MemoryChanges) -> Memory:
        async with self.write_first.writing():
            return await self._commit(partial(self._edit, memory_id, changes), self._write_edit)

    async def _edit(self, memory_id: str, changes: MemoryChanges) -> _Edit:
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
        if updated.text == previous.text:
            return _Edit(previous, updated, None)
        made = await self.vectors.for_write(Texts([attributed(updated.text, updated.speaker)]))
        return _Edit(previous, replace(updated, embedding_model=made.active.info.label), made)

    async def _write_edit(self, edit: _Edit) -> Memory:
        made, updated = edit.made, edit.updated
        stored = StoredMemory(updated, made.vectors[0]) if made is not None else updated
        if not await self.store.update(stored, edit.previous,
                                       made.shadow(0) if made is not None else None):
            if await self.store.get(updated.id) is None:
                raise NotFound(f"memory {updated.id} not found")
            raise Conflict(f"memory {updated.id} changed concurrently; retry the update")
        if updated.archived_at is None:  # archived: not indexed
            await self._mirror(made, [updated], [0])
        return updated

    async def delete(self, memory_id: str) -> None:
        """Delete a memory; deleting a summary restores its archived sources (see
        ``Store.delete_rows``)."""
        async with self.write_first.writing(), self.mutation:
            deleted = await self.store.delete(memory_id, utc_now())
            if deleted is None:
                raise NotFound(f"memory {memory_id} not found")
            memory, restored = deleted
            await self._mirror(removed=[memory], restored=restored)

    async def expire(self, user_id: str) -> int:
        """Delete the user's expired memories (the ``expire`` job); how many."""
        async with self.mutation:
            expired, restored = await self.store.delete_expired(user_id, utc_now())
            await self._mirror(removed=expired, restored=restored)
        return len(expired)

    async def delete_user(self, user_id: str) -> int:
        async with self.mutation:
            ids = await self.store.delete_user(user_id, utc_now())
            for index in self.models.indexes():
                await asyncio.to_thread(index.drop, user_id)
        return len(ids)

    async def erase(self, memory_id: str) -> Erased:
        """Right to erasure of one memory: deleted (a summary restores its sources, as on
        delete) with every history and ingest event of it, in one transaction; also a memory
        deleted before, whose history is all that is left. ``NotFound`` when neither is."""
        async with self.mutation:
            erased = await self.store.erase(memory_id, utc_now())
            if erased is None:
                raise NotFound(f"memory {memory_id} not found")
            if erased.memory is not None:
                await self._mirror(removed=[erased.memory], restored=erased.restored)
        return erased

    async def erase_user(self, user_id: str) -> int:
        """Right to erasure of a user: every memory, history event and ingest event of the
        user, in one transaction; how many memories were stored."""
        async with self.mutation:
            ids = await self.store.erase_user(user_id)
            for index in self.models.indexes():
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

    async def search(self, ask: SearchQuery) -> list[ScoredMemory]:
        """The user's memories that best answer the query, best first (see ``search_outcome``)."""
        return (await self.search_outcome(ask)).results

    async def search_outcome(self, ask: SearchQuery) -> SearchOutcome:
        """Search in ``ask.mode`` (None: the policy's), rerank, rank; see
        ``gateway.memory.pipeline``."""
        return await self.searches.run(ask)


def _index_rows(index: VectorIndex, users: list[str], ids: list[str], vectors: np.ndarray) -> None:
    """Add rows to an index, one call per user partition."""
    by_user: dict[str, list[int]] = {}
    for position, user in enumerate(users):
        by_user.setdefault(user, []).append(position)
    for user, positions in by_user.items():
        index.add(user, [ids[p] for p in positions], vectors[positions])
