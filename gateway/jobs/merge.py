"""The ``merge`` job for one user: cluster the vectors, merge the near duplicates that got
through at write time (``dedup: false``, adds from before dedup existed, the Mem0 adapter).

Clustering is spherical k-means (``gateway.jobs.clustering``: faiss on CPU, cuVS on a GPU;
about ``CLUSTER_SIZE`` memories a cluster), so each memory is compared only with the others of
its two nearest clusters and its scope; two memories are duplicates by the write-time rule
(``gateway.memory.dedup``). In a group the oldest memory is kept and takes the others' metadata
(later wins), the highest priority, the latest occurrence and the latest expiry (none if any has
none); the others are deleted, each history recording the memory it was merged into. A group
commits whole, a few groups per transaction (``gateway.jobs.pacing``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from gateway.domain.model import Memory
from gateway.jobs.clustering import cluster_cells, cluster_rows
from gateway.jobs.cpu import run_step
from gateway.jobs.pacing import STEP_S, Pacer, write_chunks
from gateway.memory.dedup import DedupPolicy, same_words, words
from gateway.memory.service import MemoryService, utc_now
from gateway.store.types import Change, WritePlan

# k-means runs on the jobs' nice-19 thread, grouping on their step thread (gateway.jobs.cpu):
# its Python loops hold the GIL that the event loop needs for every request step, and a
# waiting thread only gets it after the switch interval (5 ms). So it runs in steps of a few ms
# (``DuplicateFinder.step``; the job paces them, gateway.jobs.pacing) and yields the GIL after
# each cell; the loops only visit pairs the cosine already let through (numpy, GIL released),
# and only their texts are split into words (the largest share of the job's GIL time
# otherwise, measured with py-spy --gil during make bench-jobs).


READ_CHUNK = 128  # memories read per store call: a search's reads wait for one chunk at most


@dataclass(frozen=True, slots=True)
class MergeResult:
    memories: int  # live memories looked at
    merged: int  # memories merged into another (deleted)


class DuplicateFinder:
    """Groups (positions, oldest first) of memories that duplicate each other, found cell by
    cell in steps; ``memories`` in id (creation) order. A memory joins a group only as a
    duplicate of its keeper (the oldest), so typos cannot chain one fact into another."""

    def __init__(self, memories: list[Memory], vectors: np.ndarray, policy: DedupPolicy,
                 cells: np.ndarray) -> None:
        self.memories, self.vectors, self.policy = memories, vectors, policy
        self.root = list(range(len(memories)))
        by_cell: dict[tuple[int, str | None, str | None], list[int]] = {}
        for position, memory in enumerate(memories):
            for cell in {int(c) for c in cells[position]}:
                by_cell.setdefault((cell, memory.agent_id, memory.run_id), []).append(position)
        self._cells = list(by_cell.values())
        self._next = 0
        self._split: dict[int, list[str]] = {}  # words of the memories a cosine let through

    @property
    def done(self) -> bool:
        return self._next >= len(self._cells)

    def step(self, budget_s: float = math.inf) -> bool:
        """Group cells until ``budget_s`` has passed (one cell at least); True when all are
        done. Holds the GIL: call it from the jobs' step thread (``run_step``)."""
        deadline = time.perf_counter() + budget_s
        while not self.done:
            self._group(self._cells[self._next])
            self._next += 1
            time.sleep(0)  # hand the GIL to the event loop between cells (see above)
            if time.perf_counter() >= deadline:
                break
        return self.done

    def groups(self) -> list[list[int]]:
        found: dict[int, list[int]] = {}
        for position, keeper in enumerate(self.root):
            found.setdefault(keeper, []).append(position)
        return [g for g in found.values() if len(g) > 1]

    def _group(self, members: list[int]) -> None:
        root, policy = self.root, self.policy
        close = (self.vectors[members] @ self.vectors[members].T) >= policy.min_cosine
        for b in range(1, len(members)):
            if root[members[b]] != members[b]:
                continue  # grouped in another cell already
            for a in np.flatnonzero(close[:b, b]):  # only the pairs the cosine lets through
                if root[members[a]] != members[a]:
                    continue  # compare with group keepers only
                if not policy.lexical or same_words(self._words(members[b]),
                                                    self._words(members[a])):
                    root[members[b]] = members[a]
                    break

    def _words(self, position: int) -> list[str]:
        if position not in self._split:
            self._split[position] = words(self.memories[position].text)
        return self._split[position]


def duplicate_groups(memories: list[Memory], vectors: np.ndarray, policy: DedupPolicy
                     ) -> list[list[int]]:
    """Every group at once (``DuplicateFinder``)."""
    finder = DuplicateFinder(memories, vectors, policy, cluster_cells(vectors))
    finder.step()
    return finder.groups()


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
    """Not expired, not a summary (``gateway.jobs.compress``: deleting one as a duplicate
    would strand its archived sources) and not an image (its text is a caption, maybe empty:
    two pictures are never duplicates by their words)."""
    return ((memory.expires_at is None or memory.expires_at > now) and memory.sources is None
            and memory.modality == "text")


async def merge_user(service: MemoryService, user_id: str, policy: DedupPolicy,
                     pacer: Pacer | None = None) -> MergeResult:
    """Merge one user's duplicates; idempotent: a second run finds none. Paced in slices
    (``gateway.jobs.pacing``): reads in chunks, grouping in steps, writes of a few groups per
    transaction (each group is merged whole or not at all; a crash between two leaves the
    rest for the next run)."""
    pacer = pacer or Pacer()
    await pacer.turn()
    ids, vectors = await service.store.user_vectors(user_id)
    if not ids:
        return MergeResult(0, 0)
    now = utc_now()
    found: dict[str, Memory] = {}
    for start in range(0, len(ids), READ_CHUNK):
        await pacer.turn()
        found.update(await service.store.get_many(ids[start:start + READ_CHUNK]))
    live = [i for i, memory_id in enumerate(ids)
            if memory_id in found and _live(found[memory_id], now)]
    memories = [found[ids[i]] for i in live]
    await pacer.turn()
    vectors, cells = await pacer.niced(cluster_rows, vectors, live)
    await pacer.turn()
    finder = await run_step(DuplicateFinder, memories, vectors, policy, cells)
    while not finder.done:
        await pacer.turn()
        await run_step(finder.step, STEP_S)
    merged = 0
    for chunk in write_chunks(finder.groups()):
        await pacer.turn()
        write = WritePlan(at=now, payload={"reason": "merge"})
        for group in chunk:
            keeper, others = memories[group[0]], [memories[p] for p in group[1:]]
            after = folded(keeper, others, now)
            write.changes.append(Change(keeper, after, {"merged": [m.id for m in others]}))
            write.deletes.extend(others)
            write.links.update({m.id: {"merged_into": keeper.id} for m in others})
        await service.consolidate(write)
        merged += len(write.deletes)
    return MergeResult(len(memories), merged)
