"""Mem0 queries over the service: which partitions a filter reaches, and what matches in them.

The service searches and lists one user partition at a time with exact-match filters. A Mem0
filter may span users (``OR``, ``*``, an agent across users) and use operators the store does
not evaluate (``ne``, ``in``, ``contains``...). So: pick the partitions the filter can reach,
hand the service the conditions it can evaluate exactly, and test the whole filter on what
comes back. When some condition could not be handed over, a search asks each partition for a
larger pool (``POOL_FACTOR`` x top_k, at least ``POOL_MIN``) before testing, so a selective
filter may still return fewer than top_k results: the filter is applied to the best candidates.

Bounds (issue 19, finding 5): a call's cost follows its own tenant's data, not the store's.
The partitions come from the tenant's own populations (a reader-side count over its id
prefix), one call reads at most ``MAX_SCAN`` memories over all its partitions, the pool asked
of each partition is at most the v1 search limit, and the filter is tested off the event loop
within a time limit (``sieve``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.api.deps import not_found
from gateway.api.mem0 import filters, sieve
from gateway.api.mem0.entities import Partitions, check_entity_id
from gateway.api.mem0.filters import Cond, Node, evaluate
from gateway.api.mem0.schemas import APP_KEY, RESERVED_PREFIX
from gateway.api.mem0.views import record, store_time
from gateway.api.schemas import MAX_SEARCH_LIMIT
from gateway.domain.model import HistoryEvent, Memory, ScoredMemory, SearchFilters
from gateway.errors import InvalidInput, NotFound
from gateway.memory.search import SearchMode, SearchQuery
from gateway.memory.service import MemoryService
from gateway.store.types import Population

MAX_PARTITIONS = 100  # users (or agent/app/run partitions) one call may fan out to
MAX_SCAN = 100_000  # memories one list or delete call may read, over all its partitions
SCAN_PAGE = 1_000
POOL_FACTOR, POOL_MIN = 5, 50
MAX_POOL = MAX_SEARCH_LIMIT  # per partition: the v1 cap, so the pipeline's pools stay in bounds
INLINE_ITEMS = 1_000  # sorting more than this runs in a worker thread
T = TypeVar("T")


def pushdown(node: Node) -> tuple[SearchFilters, bool]:
    """The necessary conditions the store evaluates exactly, and whether they (with the
    partition choice, which settles ``user_id``) are the whole filter."""
    scalar = (str, int, float, bool, type(None))
    found: dict[str, object] = {}
    metadata: dict[str, str | int | float | bool | None] = {}
    exact = True
    for part in filters.conjuncts(node):
        if isinstance(part, Cond) and part.field == "user_id":
            continue
        if not isinstance(part, Cond):
            exact = False
        elif part.field in ("agent_id", "run_id") and part.op == "eq" \
                and part.field not in found:
            found[part.field] = part.value
        elif part.field == "app_id" and part.op == "eq" and APP_KEY not in metadata:
            metadata[APP_KEY] = part.value
        elif (part.field == "metadata" and part.op == "eq" and isinstance(part.value, scalar)
              and part.key is not None and part.key not in metadata
              and not part.key.startswith(RESERVED_PREFIX)):
            metadata[part.key] = part.value
        elif part.field == "created_at" and part.op == "gte" and "after" not in found:
            found["after"] = store_time(part.value)
        elif part.field == "created_at" and part.op == "lt" and "before" not in found:
            found["before"] = store_time(part.value)
        else:
            exact = False
    pushed = SearchFilters(
        agent_id=found.get("agent_id"),  # type: ignore[arg-type]
        run_id=found.get("run_id"),  # type: ignore[arg-type]
        metadata=metadata,
        created_after=found.get("after"),  # type: ignore[arg-type]
        created_before=found.get("before"),  # type: ignore[arg-type]
    )
    return pushed, exact


class Finder:
    """One caller's Mem0 view of the service (its partitions come from ``parts``)."""

    def __init__(self, service: MemoryService, parts: Partitions) -> None:
        self.service = service
        self.parts = parts

    async def owned(self, memory_id: str) -> Memory:
        """The memory if it is the caller's; another tenant's is as missing as a missing one."""
        try:
            memory = await self.service.get(memory_id)
        except NotFound:
            raise not_found(memory_id) from None
        if not self.parts.owns(memory.user_id):
            raise not_found(memory_id)
        return memory

    async def owned_history(self, memory_id: str) -> list[HistoryEvent]:
        """A memory's events (also after its deletion) if it was the caller's."""
        try:
            events = await self.service.history(memory_id)
        except NotFound:
            raise not_found(memory_id) from None
        if not events or not self.parts.owns(events[0].user_id):
            raise not_found(memory_id)
        return events

    def matches(self, node: Node, memory: Memory) -> bool:
        return bool(evaluate(node, record(memory, self.parts)))

    def _record(self, memory: Memory) -> filters.Record:
        return record(memory, self.parts)

    def _hit_record(self, hit: ScoredMemory) -> filters.Record:
        return record(hit.memory, self.parts)

    async def partitions(self, node: Node) -> list[str]:
        """The caller's partitions where ``node`` can hold, sorted; at most MAX_PARTITIONS."""
        users = filters.pinned_values(node, "user_id")
        if users is not None:
            found = [self.parts.for_entity("user", check_entity_id(u, "user_id"))
                     for u in sorted(users)]
        else:
            found = sorted(await self._reachable(node))
        if len(found) > MAX_PARTITIONS:
            raise InvalidInput(f"the filters reach {len(found)} users or entities; at most "
                               f"{MAX_PARTITIONS} per call: narrow them with user_id")
        return found

    async def _reachable(self, node: Node) -> set[str]:
        """The caller's partitions whose entity ids do not rule ``node`` out (tested in a
        worker thread: a tenant may have many populations)."""
        prefix, without = self.parts.stored_range()
        groups = [g for g in await self.service.store.populations(APP_KEY, prefix, without)
                  if self.parts.owns(g.user_id)]
        kept = await sieve.keep(node, groups, self._ids, sieve.deadline(), maybe=True)
        return {group.user_id for group in kept}

    def _ids(self, group: Population) -> filters.Record:
        return {"user_id": self.parts.user_of(group.user_id), "agent_id": group.agent_id,
                "run_id": group.run_id, "app_id": group.tag if isinstance(group.tag, str)
                else None}

    async def search(
        self, node: Node, *, query: str, top_k: int, threshold: float | None,
        rerank: bool | None, mode: SearchMode | None, include_expired: bool,
    ) -> list[ScoredMemory]:
        """The best ``top_k`` memories matching ``node`` across its partitions, best first."""
        partitions = await self.partitions(node)
        pushed, exact = pushdown(node)
        pool = top_k if exact else min(max(top_k * POOL_FACTOR, POOL_MIN), MAX_POOL)
        found = await asyncio.gather(*(
            self.service.search(SearchQuery(
                user_id=partition, query=query, limit=pool, filters=pushed,
                threshold=threshold, rerank=rerank, mode=mode, include_expired=include_expired))
            for partition in partitions
        ))
        pooled = [hit for hits in found for hit in hits]
        kept = await sieve.keep(node, pooled, self._hit_record, sieve.deadline())
        kept.sort(key=lambda hit: hit.score, reverse=True)
        return kept[:top_k]

    async def matching(self, node: Node, *, include_expired: bool = True) -> list[Memory]:
        """Every memory matching ``node``, newest first (ids are time-ordered)."""
        out: list[Memory] = []
        budget = [MAX_SCAN]  # memories this call may still read, over all its partitions
        until = sieve.deadline()
        for partition in await self.partitions(node):
            rows = await self._scan(partition, include_expired, budget)
            out.extend(await sieve.keep(node, rows, self._record, until))
        return await self._off_loop(out, lambda: sorted(out, key=lambda m: m.id, reverse=True))

    @staticmethod
    async def _off_loop(items: list[Any], work: Callable[[], list[T]]) -> list[T]:
        """Run a sort over ``items`` in a thread when it is big enough to stall the event
        loop (filters always run in a thread: ``sieve``)."""
        if len(items) <= INLINE_ITEMS:
            return work()
        return await asyncio.to_thread(work)

    async def _scan(self, partition: str, include_expired: bool,
                    budget: list[int]) -> list[Memory]:
        """The partition's memories, spending ``budget[0]`` (the call's ``MAX_SCAN``)."""
        rows: list[Memory] = []
        cursor = None
        while True:
            if budget[0] <= 0:
                raise InvalidInput(f"more than {MAX_SCAN} memories to read for one call; "
                                   "narrow the filters")
            page, cursor = await self.service.list_page(partition, min(SCAN_PAGE, budget[0]),
                                                        cursor, include_expired=include_expired)
            rows.extend(page)
            budget[0] -= len(page)
            if cursor is None:
                return rows

    async def delete_matching(self, node: Node) -> int:
        """Delete what ``node`` matches: a whole user at once when that is all it says."""
        if isinstance(node, Cond) and node.field == "user_id" and node.op == "eq":
            user = check_entity_id(node.value, "user_id")
            return await self.service.delete_user(self.parts.for_entity("user", user))
        deleted = 0
        for memory in await self.matching(node):
            with contextlib.suppress(NotFound):  # deleted meanwhile: the goal is met
                await self.service.delete(memory.id)
                deleted += 1
        return deleted
