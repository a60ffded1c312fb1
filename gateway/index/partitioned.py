"""The search engine: per-collection partitions, exact when small, an ANN graph when large.

A partition (one user, or one big shared collection) is searched exactly until it holds
``policy.threshold`` live rows. Past that, a graph is built in the background from a snapshot,
its recall@10 is measured on held-out queries against exact search, and it is installed only if
the recall reaches ``policy.recall_bound`` (search effort is raised step by step until it does).
Rows added or changed after the snapshot are searched exactly and merged; removed ones are
masked. When those changes pass ``policy.rebuild_drift`` of the snapshot, it is rebuilt.
Filters that keep few rows (``policy.exact_filter_share``) go to pre-filtered exact search,
where graph search loses recall.

Concurrency: no lock is held across a search. Each partition has its own writer lock and
publishes immutable views that searches read without locking (``partition.py``, ``view.py``),
so a write never waits for a search, of its own user or any other. ``_registry`` guards only
the partition dict, the RAM budget and the running totals, for dictionary-sized steps. Lock
order: a partition's lock, then ``_registry``, then the hot tier's; never the reverse. Sizes
and stats are totals kept by the writers, so reading them (``/metrics``) takes no lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from gateway.index.base import Hit
from gateway.index.graph import GraphBuilder
from gateway.index.partition import Partition
from gateway.index.recall import held_out_queries, measure_recall
from gateway.index.residency import RamBudget
from gateway.index.tiers import HotTier
from gateway.index.view import Snapshot
from gateway.redact import user_ref
from gateway.threads import lower_thread_priority

__all__ = ["AnnPolicy", "IndexStats", "PartitionedIndex", "held_out_queries", "measure_recall"]

log = logging.getLogger("gateway.index")
BUILD_THREAD_NICE = 10  # below searches (+5) and requests (0), above consolidation jobs (19)


@dataclass(frozen=True, slots=True)
class AnnPolicy:
    threshold: int = 20_000
    recall_bound: float = 0.95
    # A graph is rebuilt once more than ``rebuild_drift`` of its rows, and more than
    # ``rebuild_min_rows``, changed since its snapshot: changed rows are searched exactly, a
    # full read of each (6 MB per query at 4,096 rows of 384-d), so their share stays small
    # on big partitions while small ones are not rebuilt every few writes.
    rebuild_drift: float = 0.05
    rebuild_min_rows: int = 4096
    exact_filter_share: float = 0.1
    probe_queries: int = 200
    probe_k: int = 10


@dataclass(frozen=True, slots=True)
class IndexStats:
    collections: int
    vectors: int
    graphs: int
    graph_vectors: int
    bytes: int
    builds: int
    builds_rejected: int
    builds_pending: int = 0  # queued or running: the index is still settling


@dataclass
class _Totals:
    """Running sums over the registered partitions, changed under ``_registry`` only."""

    vectors: int = 0
    bytes: int = 0
    graphs: int = 0
    graph_vectors: int = 0
    builds: int = 0
    builds_rejected: int = 0


class PartitionedIndex:
    """``VectorIndex`` over partitions; with ``builder=None`` every search is exact."""

    def __init__(
        self,
        builder: GraphBuilder | None = None,
        policy: AnnPolicy | None = None,
        *,
        background: bool = True,
        tier: HotTier | None = None,
        ram_budget_bytes: int | None = None,
    ) -> None:
        self.builder = builder
        self.tier = tier
        self.ram = RamBudget(ram_budget_bytes) if ram_budget_bytes else None
        self.policy = policy or AnnPolicy()
        self._partitions: dict[str, Partition] = {}
        self._dim: int | None = None
        self._registry = threading.Lock()
        self._totals = _Totals()
        self._background = background
        # A graph build is minutes of one core on a big partition; searches and writes answer
        # from the exact view meanwhile, so the build runs only when they leave the CPU idle.
        self._builds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ann-build",
                                          initializer=lower_thread_priority,
                                          initargs=(BUILD_THREAD_NICE,))
        self._pending: set[Future[None]] = set()

    @property
    def dim(self) -> int | None:
        return self._dim

    # -- registry (``_registry`` held) -------------------------------------------------------
    def _claim_dim(self, dim: int) -> None:
        if self._dim is None:
            self._dim = dim
        elif dim != self._dim:
            raise ValueError(f"index holds {self._dim}-d vectors, got {dim}-d")

    def _count(self, partition: Partition, counts: tuple[int, int, int, int]) -> None:
        """Move the totals from what ``partition`` last counted for to ``counts``."""
        old, totals = partition.accounted, self._totals
        totals.vectors += counts[0] - old[0]
        totals.bytes += counts[1] - old[1]
        totals.graphs += counts[2] - old[2]
        totals.graph_vectors += counts[3] - old[3]
        partition.accounted = counts

    def _unregister(self, collection: str) -> Partition | None:
        """Forget a collection here, in the RAM budget and in the hot tier."""
        partition = self._partitions.pop(collection, None)
        if partition is not None:
            self._count(partition, (0, 0, 0, 0))
        if self.ram is not None:
            self.ram.forget(collection)
        if self.tier is not None:
            self.tier.forget(collection)
        return partition

    def _evict(self, victims: list[str]) -> None:
        for victim in victims:  # the RAM budget chose them; the store still has their rows
            self._unregister(victim)

    # -- mutation ---------------------------------------------------------------------------
    def _check(self, ids: list[str], vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError(f"expected [{len(ids)}, dim] vectors, got {vectors.shape}")
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise ValueError(f"index holds {self._dim}-d vectors, got {vectors.shape[1]}-d")
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate ids in one add")
        return vectors

    def _writable(self, collection: str, dim: int | None = None) -> Partition | None:
        """The collection's partition with its lock held (the caller releases it).

        Created when ``dim`` is given and RAM is not budgeted; None when absent (with a
        budget, an absent partition was evicted: the store has its rows, the next load brings
        them).
        """
        while True:
            with self._registry:
                partition = self._partitions.get(collection)
                if partition is None:
                    if dim is None or self.ram is not None:
                        return None
                    self._claim_dim(dim)
                    partition = self._partitions[collection] = Partition(dim)
            partition.lock.acquire()
            if self._partitions.get(collection) is partition:
                return partition
            partition.lock.release()  # dropped, evicted or reloaded meanwhile: look again

    def _settle(self, collection: str, partition: Partition) -> None:
        """Totals and RAM budget catch up with a change to ``partition`` (its lock held)."""
        counts = partition.counts()
        with self._registry:
            if self._partitions.get(collection) is not partition:
                return  # dropped, evicted or reloaded meanwhile
            if counts[0] == 0:
                self._unregister(collection)
                return
            self._count(partition, counts)
            if self.ram is not None:
                self._evict(self.ram.touch(collection, counts[1]))

    def add(self, collection: str, ids: list[str], vectors: np.ndarray) -> None:
        if not ids:
            return
        vectors = self._check(ids, vectors)
        partition = self._writable(collection, vectors.shape[1])
        if partition is None:
            return
        try:
            partition.add(ids, vectors)
            self._settle(collection, partition)
            self._maybe_build(collection, partition)
        finally:
            partition.lock.release()

    def needs_load(self, collection: str) -> bool:
        """True when RAM is budgeted and the collection is not in it (the store may have it)."""
        return self.ram is not None and collection not in self._partitions

    def load(self, collection: str, ids: list[str], vectors: np.ndarray) -> None:
        """(Re)place a collection with rows read from the store."""
        partition = None
        if ids:
            vectors = self._check(ids, vectors)
            partition = Partition(vectors.shape[1])
            partition.add(ids, vectors)  # private until registered: no lock needed yet
        with self._registry:
            if partition is not None:
                self._claim_dim(partition.dim)
            self._unregister(collection)
            if partition is not None:
                self._partitions[collection] = partition
            if self.ram is not None:
                self.ram.loads += 1
        if partition is not None:
            with partition.lock:
                self._settle(collection, partition)
                self._maybe_build(collection, partition)

    def remove(self, collection: str, ids: Iterable[str]) -> int:
        partition = self._writable(collection)
        if partition is None:
            return 0
        try:
            removed = partition.remove(ids)
            self._settle(collection, partition)  # an emptied partition is forgotten
            if partition.live:
                self._maybe_build(collection, partition)
            return removed
        finally:
            partition.lock.release()

    def drop(self, collection: str) -> int:
        with self._registry:
            partition = self._unregister(collection)
        return 0 if partition is None else partition.live

    def rebuild(self, rows: Iterable[tuple[str, str, np.ndarray]]) -> int:
        grouped: dict[str, tuple[list[str], list[np.ndarray]]] = {}
        for collection, key, vector in rows:
            ids, vectors = grouped.setdefault(collection, ([], []))
            ids.append(key)
            vectors.append(vector)
        with self._registry:
            for collection in list(self._partitions):
                self._unregister(collection)
            if self.tier is not None:
                for collection in self.tier.resident():
                    self.tier.forget(collection)
            self._dim = None
            if self.ram is not None:  # budgeted: partitions load lazily from the store
                self.ram = RamBudget(self.ram.budget_bytes)
                return 0
        for collection, (ids, vectors) in grouped.items():
            self.add(collection, ids, np.stack(vectors))
        return self.size()

    # -- graphs (the partition's lock held) --------------------------------------------------
    def _maybe_build(self, collection: str, partition: Partition) -> None:
        if self.builder is None or partition.building:
            return
        policy, view = self.policy, partition.view
        wanted = (
            view.snapshot is None and view.live >= policy.threshold
            and view.live >= 2 * partition.failed_at
        ) or (view.snapshot is not None and view.changed > max(
            policy.rebuild_drift * len(view.snapshot.labels), policy.rebuild_min_rows))
        if not wanted:
            return
        partition.building = True
        if self._background:
            future = self._builds.submit(self._build, collection, partition)
            self._pending.add(future)
            future.add_done_callback(self._pending.discard)
        else:
            self._build(collection, partition)

    def _build(self, collection: str, partition: Partition) -> None:
        """Capture under the partition's lock, build and measure outside it, install under it."""
        assert self.builder is not None
        try:
            with partition.lock:
                view = partition.begin_capture()
            ids, vectors = view.live_rows()
            graph = self.builder.build(vectors)
            queries = held_out_queries(vectors, self.policy.probe_queries)
            recall, effort = 0.0, 0
            for effort in self.builder.efforts:
                graph.set_effort(effort)
                recall = measure_recall(graph, vectors, queries, self.policy.probe_k)
                if recall >= self.policy.recall_bound:
                    break
            with partition.lock:
                partition.building = False
                if self._partitions.get(collection) is not partition:
                    return  # dropped or rebuilt meanwhile
                if recall < self.policy.recall_bound:
                    partition.failed_at = len(ids)
                    partition.changed_since_capture = None
                    with self._registry:
                        self._totals.builds_rejected += 1
                    log.warning("%s graph for %s rejected: recall@%d %.3f < %.3f",
                                self.builder.name, user_ref(collection), self.policy.probe_k,
                                recall,
                                self.policy.recall_bound)
                    return
                label_of = {key: label for label, key in enumerate(ids)}
                partition.install(Snapshot(graph, ids, label_of, recall, effort))
                with self._registry:
                    self._totals.builds += 1
                self._settle(collection, partition)
                self._maybe_build(collection, partition)  # rows that arrived meanwhile
            log.info("%s graph for %s: %d rows, recall@%d %.3f at effort %d",
                     self.builder.name, user_ref(collection), len(ids), self.policy.probe_k,
                     recall, effort)
        except Exception:
            with partition.lock:
                partition.building = False
                partition.changed_since_capture = None
            log.exception("graph build for %s failed; the partition stays exact",
                          user_ref(collection))

    def wait_for_builds(self, timeout_s: float = 600) -> None:
        """Block until queued graph builds finish (tests, benchmarks, orderly shutdown)."""
        for future in list(self._pending):
            future.result(timeout=timeout_s)
            self._pending.discard(future)  # its done-callback may not have run yet

    def close(self) -> None:
        self._builds.shutdown(wait=True, cancel_futures=True)

    # -- search (no lock held while computing) ------------------------------------------------
    def search(
        self, collection: str, query: np.ndarray, k: int, *, allow: Collection[str] | None = None
    ) -> list[Hit]:
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        return self.search_batch(collection, query, k, allow=allow)[0]

    def search_batch(
        self, collection: str, queries: np.ndarray, k: int, *, allow: Collection[str] | None = None
    ) -> list[list[Hit]]:
        """The ``k`` best rows for each query (one backend call for all), best first."""
        queries = np.asarray(queries, dtype=np.float32)
        if k <= 0:
            return [[] for _ in range(len(queries))]
        partition = self._partitions.get(collection)
        if partition is None:
            return [[] for _ in range(len(queries))]
        if self.ram is not None:
            with self._registry:
                self._evict(self.ram.touch(collection))
        view = partition.view  # immutable: the rest runs without any lock
        if queries.ndim != 2 or queries.shape[1] != view.dim:
            raise ValueError(f"query is {queries.shape[-1]}-d, index holds {view.dim}-d")
        heavy_filter = allow is not None and (
            len(allow) <= self.policy.exact_filter_share * view.live
        )
        if view.snapshot is None or heavy_filter:
            scorer = self.tier.scorer(collection, view) if self.tier else None
            return view.exact(queries, k, allow, scorer)
        return view.approximate(queries, k, allow)

    # -- sizes: lock-free reads of a dict entry or the running totals -------------------------
    def size(self, collection: str | None = None) -> int:
        if collection is not None:
            partition = self._partitions.get(collection)
            return 0 if partition is None else partition.live
        return self._totals.vectors

    def stats(self) -> IndexStats:
        totals = self._totals
        return IndexStats(
            collections=len(self._partitions), vectors=totals.vectors, graphs=totals.graphs,
            graph_vectors=totals.graph_vectors, bytes=totals.bytes, builds=totals.builds,
            builds_rejected=totals.builds_rejected, builds_pending=len(self._pending),
        )
