"""The ``merge`` job for one user: cluster the vectors, merge the near duplicates that got
through at write time (``dedup: false``, adds from before dedup existed, the Mem0 adapter).

Clustering is spherical k-means (``gateway.jobs.clustering``: faiss on CPU, cuVS on a GPU;
about ``CLUSTER_SIZE`` memories a cluster), so each memory is compared only with the others of
its two nearest clusters and its scope; two memories are duplicates by the write-time rule
(``gateway.memory.dedup``). In a group the oldest memory is kept and takes the others' metadata
(later wins), the highest priority, the latest occurrence and the latest expiry (none if any has
none); the others are deleted, each history recording the memory it was merged into, all in one
transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from gateway.jobs.clustering import cluster_cells
from gateway.jobs.cpu import run_cpu
from gateway.memory.dedup import DedupPolicy, same_words, words
from gateway.memory.model import Memory
from gateway.memory.service import MemoryService, utc_now
from gateway.store.ingest import Change, WritePlan

# Grouping runs on the jobs' low-priority thread (gateway.jobs.cpu) of the gateway process:
# its Python loops hold the GIL that the event loop needs for every request step, and a
# waiting thread only gets it after the switch interval (5 ms). Yielding after each cell hands
# it over at once; the loops only visit pairs the cosine already let through (numpy, GIL
# released), and only their texts are split into words (the largest share of the job's GIL
# time otherwise, measured with py-spy --gil during make bench-jobs).


READ_CHUNK = 256  # memories read per store call: a search's reads wait for one chunk at most


@dataclass(frozen=True, slots=True)
class MergeResult:
    memories: int  # live memories looked at
    merged: int  # memories merged into another (deleted)


def duplicate_groups(memories: list[Memory], vectors: np.ndarray, policy: DedupPolicy
                     ) -> list[list[int]]:
    """Groups (positions, oldest first) of memories that duplicate each other; ``memories``
    in id (creation) order. A memory joins a group only as a duplicate of its keeper (the
    oldest), so typos cannot chain one fact into another."""
    cells = cluster_cells(vectors)
    split: dict[int, list[str]] = {}  # words of the memories a cosine let through, only

    def words_of(position: int) -> list[str]:
        if position not in split:
            split[position] = words(memories[position].text)
        return split[position]

    root = list(range(len(memories)))
    by_cell: dict[tuple[int, str | None, str | None], list[int]] = {}
    for position, memory in enumerate(memories):
        for cell in {int(c) for c in cells[position]}:
            by_cell.setdefault((cell, memory.agent_id, memory.run_id), []).append(position)
    for members in by_cell.values():
        close = (vectors[members] @ vectors[members].T) >= policy.min_cosine
        for b in range(1, len(members)):
            if root[members[b]] != members[b]:
                continue  # grouped in another cell already
            for a in np.flatnonzero(close[:b, b]):  # only the pairs the cosine lets through
                if root[members[a]] != members[a]:
                    continue  # compare with group keepers only
                if not policy.lexical or same_words(words_of(members[b]), words_of(members[a])):
                    root[members[b]] = members[a]
                    break
        time.sleep(0)  # hand the GIL to the event loop between cells (see above)
    groups: dict[int, list[int]] = {}
    for position, keeper in enumerate(root):
        groups.setdefault(keeper, []).append(position)
    return [g for g in groups.values() if len(g) > 1]


def folded(keeper: Memory, others: list[Memory], now: str) -> Memory:
    """The keeper with what its duplicates add (see the module docstring)."""
    group = [keeper, *others]
    metadata: dict = {}
    for memory in group:
        metadata.update(memory.metadata)
    expiries = [m.expires_at for m in group]
    return replace(
        keeper, metadata=metadata, priority=max(m.priority for m in group),
        occurred_at=max(m.occurred_at for m in group),
        expires_at=None if None in expiries else max(e for e in expiries if e is not None),
        updated_at=max(now, keeper.updated_at),
    )


def _live(memory: Memory, now: str) -> bool:
    """Not expired, and not a summary (``gateway.jobs.compress``: deleting one as a duplicate
    would strand its archived sources)."""
    return (memory.expires_at is None or memory.expires_at > now) and memory.sources is None


async def merge_user(service: MemoryService, user_id: str, policy: DedupPolicy) -> MergeResult:
    """Merge one user's duplicates (one transaction); idempotent: a second run finds none."""
    ids, vectors = await service.store.user_vectors(user_id)
    if not ids:
        return MergeResult(0, 0)
    now = utc_now()
    found: dict[str, Memory] = {}
    for start in range(0, len(ids), READ_CHUNK):  # searches' reads take turns in between
        found.update(await service.store.get_many(ids[start:start + READ_CHUNK]))
    live = [i for i, memory_id in enumerate(ids)
            if memory_id in found and _live(found[memory_id], now)]
    memories = [found[ids[i]] for i in live]
    groups = await run_cpu(duplicate_groups, memories, vectors[live], policy)
    if not groups:
        return MergeResult(len(memories), 0)
    write = WritePlan(at=now, payload={"reason": "merge"})
    for group in groups:
        keeper, others = memories[group[0]], [memories[p] for p in group[1:]]
        after = folded(keeper, others, now)
        write.changes.append(Change(keeper, after, {"merged": [m.id for m in others]}))
        write.deletes.extend(others)
        write.links.update({m.id: {"merged_into": keeper.id} for m in others})
    await service.consolidate(write)
    return MergeResult(len(memories), len(write.deletes))
