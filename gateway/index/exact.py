"""Exact inner-product search in numpy: one contiguous matrix per collection.

Rows are appended into a matrix that grows by doubling; a removed row becomes a tombstone
(masked at search time) and the matrix is compacted once tombstones pass a quarter of it.
A lock makes every method safe to call from worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable

import numpy as np

from gateway.index.base import Hit

_INITIAL_CAPACITY = 16


class _Partition:
    """One collection's vectors."""

    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((_INITIAL_CAPACITY, dim), dtype=np.float32)
        self.ids: list[str | None] = []  # row -> id; None marks a tombstone
        self.rows: dict[str, int] = {}  # id -> row
        self.tombstones = 0

    @property
    def used(self) -> int:
        return len(self.ids)

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        fresh = [i for i, key in enumerate(ids) if key not in self.rows]
        for i, key in enumerate(ids):
            if key in self.rows:  # replace in place
                self.matrix[self.rows[key]] = vectors[i]
        needed = self.used + len(fresh)
        if needed > len(self.matrix):
            capacity = len(self.matrix)
            while capacity < needed:
                capacity *= 2
            grown = np.zeros((capacity, self.matrix.shape[1]), dtype=np.float32)
            grown[: self.used] = self.matrix[: self.used]
            self.matrix = grown
        start = self.used
        self.matrix[start : start + len(fresh)] = vectors[fresh]
        for offset, i in enumerate(fresh):
            self.rows[ids[i]] = start + offset
            self.ids.append(ids[i])

    def remove(self, ids: Iterable[str]) -> int:
        removed = 0
        for key in ids:
            row = self.rows.pop(key, None)
            if row is not None:
                self.ids[row] = None
                self.tombstones += 1
                removed += 1
        if self.tombstones and self.tombstones * 4 >= self.used:
            self.compact()
        return removed

    def compact(self) -> None:
        keep = [row for row, key in enumerate(self.ids) if key is not None]
        capacity = max(_INITIAL_CAPACITY, 1 << max(len(keep) - 1, 0).bit_length())
        matrix = np.zeros((capacity, self.matrix.shape[1]), dtype=np.float32)
        matrix[: len(keep)] = self.matrix[keep]
        self.matrix = matrix
        self.ids = [self.ids[row] for row in keep]
        self.rows = {key: row for row, key in enumerate(self.ids) if key is not None}
        self.tombstones = 0

    def search(self, query: np.ndarray, k: int, allow: Collection[str] | None) -> list[Hit]:
        if allow is not None:
            known = (self.rows[key] for key in allow if key in self.rows)
            rows = np.fromiter(known, dtype=np.int64)
            if rows.size == 0:
                return []
            scores = self.matrix[rows] @ query
        else:
            rows = None
            scores = self.matrix[: self.used] @ query
            if self.tombstones:
                dead = np.fromiter((key is None for key in self.ids), dtype=bool, count=self.used)
                scores[dead] = -np.inf
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        top = top[np.argsort(-scores[top], kind="stable")]
        hits = []
        for position in top:
            score = float(scores[position])
            if score == -np.inf:
                break
            row = int(rows[position]) if rows is not None else int(position)
            hits.append(Hit(id=self.ids[row], score=score))  # type: ignore[arg-type]
        return hits


class ExactIndex:
    """Brute-force search, exact by construction: the reference the ANN backends are held to."""

    def __init__(self) -> None:
        self._partitions: dict[str, _Partition] = {}
        self._dim: int | None = None
        self._lock = threading.RLock()

    @property
    def dim(self) -> int | None:
        return self._dim

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
                partition = self._partitions[collection] = _Partition(self._dim)
            partition.add(ids, vectors)

    def remove(self, collection: str, ids: Iterable[str]) -> int:
        with self._lock:
            partition = self._partitions.get(collection)
            if partition is None:
                return 0
            removed = partition.remove(ids)
            if not partition.rows:
                del self._partitions[collection]
            return removed

    def drop(self, collection: str) -> int:
        with self._lock:
            partition = self._partitions.pop(collection, None)
            return 0 if partition is None else len(partition.rows)

    def search(
        self, collection: str, query: np.ndarray, k: int, *, allow: Collection[str] | None = None
    ) -> list[Hit]:
        if k <= 0:
            return []
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        with self._lock:
            partition = self._partitions.get(collection)
            if partition is None:
                return []
            if query.shape[0] != partition.matrix.shape[1]:
                raise ValueError(
                    f"query is {query.shape[0]}-d, index holds {partition.matrix.shape[1]}-d"
                )
            return partition.search(query, k, allow)

    def size(self, collection: str | None = None) -> int:
        with self._lock:
            if collection is not None:
                partition = self._partitions.get(collection)
                return 0 if partition is None else len(partition.rows)
            return sum(len(p.rows) for p in self._partitions.values())

    def rebuild(self, rows: Iterable[tuple[str, str, np.ndarray]]) -> int:
        grouped: dict[str, tuple[list[str], list[np.ndarray]]] = {}
        for collection, key, vector in rows:
            ids, vectors = grouped.setdefault(collection, ([], []))
            ids.append(key)
            vectors.append(vector)
        fresh = ExactIndex()
        for collection, (ids, vectors) in grouped.items():
            fresh.add(collection, ids, np.stack(vectors))
        with self._lock:
            self._partitions, self._dim = fresh._partitions, fresh._dim
        return fresh.size()
