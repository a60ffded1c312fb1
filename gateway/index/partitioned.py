"""The search engine: per-collection partitions, exact when small, an ANN graph when large.

A partition (one user, or one big shared collection) is searched exactly until it holds
``policy.threshold`` live rows. Past that, a graph is built in the background from a snapshot,
its recall@10 is measured on held-out queries against exact search, and it is installed only if
the recall reaches ``policy.recall_bound`` (search effort is raised step by step until it does).
Rows added or changed after the snapshot are searched exactly and merged; removed ones are
masked. When those changes pass ``policy.rebuild_drift`` of the snapshot, it is rebuilt.
Filters that keep few rows (``policy.exact_filter_share``) go to pre-filtered exact search,
where graph search loses recall.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from gateway.index.base import Hit
from gateway.index.graph import AnnGraph, GraphBuilder
from gateway.index.partition import Partition, Snapshot
from gateway.index.residency import RamBudget
from gateway.index.tiers import HotTier

log = logging.getLogger("gateway.index")


@dataclass(frozen=True, slots=True)
class AnnPolicy:
    threshold: int = 20_000
    recall_bound: float = 0.95
    rebuild_drift: float = 0.2
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


def measure_recall(
    graph: AnnGraph, vectors: np.ndarray, queries: np.ndarray, k: int
) -> float:
    """recall@k of ``graph`` against exact inner-product search on ``vectors``."""
    k = min(k, len(vectors))
    scores = queries @ vectors.T
    truth = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    _, found = graph.search(queries, k)
    hits = sum(len(set(t.tolist()) & set(f.tolist())) for t, f in zip(truth, found, strict=True))
    return hits / (k * len(queries))


def held_out_queries(vectors: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Queries near the data but not in it: stored rows plus noise, re-normalised."""
    rng = np.random.default_rng(seed)
    picked = vectors[rng.choice(len(vectors), size=min(count, len(vectors)), replace=False)]
    noisy = picked + rng.normal(0, 0.5 / np.sqrt(vectors.shape[1]), picked.shape)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


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
        self._lock = threading.RLock()
        self._background = background
        self._builds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ann-build")
        self._pending: set[Future[None]] = set()
        self._built = 0
        self._rejected = 0

    @property
    def dim(self) -> int | None:
        return self._dim

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

    def add(self, collection: str, ids: list[str], vectors: np.ndarray) -> None:
        if not ids:
            return
        with self._lock:
            vectors = self._check(ids, vectors)
            self._dim = vectors.shape[1]
            partition = self._partitions.get(collection)
            if partition is None:
                if self.needs_load(collection):
                    return  # evicted: the store has the rows, the next load brings them
                partition = self._partitions[collection] = Partition(self._dim)
            partition.add(ids, vectors)
            self._account(collection, partition)
            self._maybe_build(collection, partition)

    def needs_load(self, collection: str) -> bool:
        """True when RAM is budgeted and the collection is not in it (the store may have it)."""
        return self.ram is not None and collection not in self._partitions

    def load(self, collection: str, ids: list[str], vectors: np.ndarray) -> None:
        """(Re)place a collection with rows read from the store."""
        with self._lock:
            self._partitions.pop(collection, None)
            if self.tier is not None:
                self.tier.forget(collection)
            if ids:
                vectors = self._check(ids, vectors)
                self._dim = vectors.shape[1]
                partition = self._partitions[collection] = Partition(self._dim)
                partition.add(ids, vectors)
                self._account(collection, partition)
                self._maybe_build(collection, partition)
            if self.ram is not None:
                self.ram.loads += 1

    def _account(self, collection: str, partition: Partition | None) -> None:
        """Keep the RAM budget: evict least recently used partitions past it."""
        if self.ram is None:
            return
        if partition is None:
            self.ram.forget(collection)
            return
        for victim in self.ram.touch(collection, partition.nbytes):
            self._partitions.pop(victim, None)
            if self.tier is not None:
                self.tier.forget(victim)

    def remove(self, collection: str, ids: Iterable[str]) -> int:
        with self._lock:
            partition = self._partitions.get(collection)
            if partition is None:
                return 0
            removed = partition.remove(ids)
            if not partition.rows:
                del self._partitions[collection]
                self._account(collection, None)
                if self.tier is not None:
                    self.tier.forget(collection)
            else:
                self._account(collection, partition)
                self._maybe_build(collection, partition)
            return removed

    def drop(self, collection: str) -> int:
        with self._lock:
            partition = self._partitions.pop(collection, None)
            self._account(collection, None)
            if self.tier is not None:
                self.tier.forget(collection)
            return 0 if partition is None else partition.live

    def rebuild(self, rows: Iterable[tuple[str, str, np.ndarray]]) -> int:
        grouped: dict[str, tuple[list[str], list[np.ndarray]]] = {}
        for collection, key, vector in rows:
            ids, vectors = grouped.setdefault(collection, ([], []))
            ids.append(key)
            vectors.append(vector)
        with self._lock:
            self._partitions, self._dim = {}, None
            if self.tier is not None:
                for collection in self.tier.resident():
                    self.tier.forget(collection)
            if self.ram is not None:  # budgeted: partitions load lazily from the store
                self.ram = RamBudget(self.ram.budget_bytes)
                return 0
            for collection, (ids, vectors) in grouped.items():
                self.add(collection, ids, np.stack(vectors))
            return self.size()

    # -- graphs -----------------------------------------------------------------------------
    def _maybe_build(self, collection: str, partition: Partition) -> None:
        if self.builder is None or partition.building:
            return
        policy = self.policy
        snap = partition.snapshot
        wanted = (
            snap is None and partition.live >= policy.threshold
            and partition.live >= 2 * partition.failed_at
        ) or (snap is not None and snap.drift > policy.rebuild_drift)
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
        assert self.builder is not None
        try:
            with self._lock:
                ids, vectors = partition.capture()
            graph = self.builder.build(vectors)
            queries = held_out_queries(vectors, self.policy.probe_queries)
            recall, effort = 0.0, 0
            for effort in self.builder.efforts:
                graph.set_effort(effort)
                recall = measure_recall(graph, vectors, queries, self.policy.probe_k)
                if recall >= self.policy.recall_bound:
                    break
            with self._lock:
                partition.building = False
                if self._partitions.get(collection) is not partition:
                    return  # dropped or rebuilt meanwhile
                if recall < self.policy.recall_bound:
                    partition.failed_at = len(ids)
                    partition.changed_since_capture = None
                    self._rejected += 1
                    log.warning("%s graph for %r rejected: recall@%d %.3f < %.3f",
                                self.builder.name, collection, self.policy.probe_k, recall,
                                self.policy.recall_bound)
                    return
                label_of = {key: label for label, key in enumerate(ids)}
                partition.install(Snapshot(graph, ids, label_of, recall, effort))
                self._built += 1
                self._maybe_build(collection, partition)  # rows that arrived meanwhile
            log.info("%s graph for %r: %d rows, recall@%d %.3f at effort %d",
                     self.builder.name, collection, len(ids), self.policy.probe_k, recall, effort)
        except Exception:
            with self._lock:
                partition.building = False
                partition.changed_since_capture = None
            log.exception("graph build for %r failed; the partition stays exact", collection)

    def wait_for_builds(self, timeout_s: float = 600) -> None:
        """Block until queued graph builds finish (tests, benchmarks, orderly shutdown)."""
        for future in list(self._pending):
            future.result(timeout=timeout_s)

    def close(self) -> None:
        self._builds.shutdown(wait=True, cancel_futures=True)

    # -- search -----------------------------------------------------------------------------
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
        with self._lock:
            partition = self._partitions.get(collection)
            if partition is None:
                return [[] for _ in range(len(queries))]
            if self.ram is not None:
                self.ram.touch(collection)
            if queries.ndim != 2 or queries.shape[1] != partition.dim:
                raise ValueError(f"query is {queries.shape[-1]}-d, index holds "
                                 f"{partition.dim}-d")
            heavy_filter = allow is not None and (
                len(allow) <= self.policy.exact_filter_share * partition.live
            )
            if partition.snapshot is None or heavy_filter:
                scorer = self.tier.scorer(collection, partition) if self.tier else None
                return partition.exact(queries, k, allow, scorer)
            return partition.approximate(queries, k, allow)

    # -- sizes ------------------------------------------------------------------------------
    def size(self, collection: str | None = None) -> int:
        with self._lock:
            if collection is not None:
                partition = self._partitions.get(collection)
                return 0 if partition is None else partition.live
            return sum(p.live for p in self._partitions.values())

    def stats(self) -> IndexStats:
        with self._lock:
            snaps = [p.snapshot for p in self._partitions.values() if p.snapshot]
            return IndexStats(
                collections=len(self._partitions),
                vectors=sum(p.live for p in self._partitions.values()),
                graphs=len(snaps),
                graph_vectors=sum(len(s.labels) for s in snaps),
                bytes=sum(p.nbytes for p in self._partitions.values()),
                builds=self._built,
                builds_rejected=self._rejected,
            )
