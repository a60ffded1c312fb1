"""One collection's vectors: an exact matrix, plus an optional ANN graph over a snapshot.

The matrix is the partition's truth in RAM (rows appended, doubling growth, tombstones
compacted past a quarter). A graph, when present, covers the rows of the snapshot it was built
from; rows added or changed since are ``fresh`` (searched exactly) and rows removed or changed
since are ``stale`` (masked out of graph results). Not thread-safe: the engine holds its lock.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

import numpy as np

from gateway.index.base import Hit
from gateway.index.graph import AnnGraph

_INITIAL_CAPACITY = 16
_versions = itertools.count()  # process-wide, so no two partition states share one

# (queries [q, dim], rows or None for all used rows) -> inner products [q, len(rows)]
Scorer = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


@dataclass
class Snapshot:
    """A graph and the ids its labels stand for."""

    graph: AnnGraph
    labels: list[str]
    label_of: dict[str, int]
    recall: float
    effort: int
    stale: set[str] = field(default_factory=set)
    fresh: set[str] = field(default_factory=set)

    @property
    def drift(self) -> float:
        """Share of the snapshot no longer answered by the graph alone."""
        return (len(self.stale) + len(self.fresh)) / max(len(self.labels), 1)


class Partition:
    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((_INITIAL_CAPACITY, dim), dtype=np.float32)
        self.ids: list[str | None] = []  # row -> id; None marks a tombstone
        self.rows: dict[str, int] = {}  # id -> row
        self.tombstones = 0
        self.version = next(_versions)  # new on every change: copies elsewhere can tell
        self.snapshot: Snapshot | None = None
        self.changed_since_capture: set[str] | None = None  # tracked while a build runs
        self.building = False
        self.failed_at: int = 0  # live rows when a build last missed the recall bound

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def used(self) -> int:
        return len(self.ids)

    @property
    def live(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        graph = self.snapshot.graph.nbytes if self.snapshot else 0
        return int(self.matrix.nbytes) + graph

    # -- mutation ---------------------------------------------------------------------------
    def _touch(self, key: str, *, alive: bool) -> None:
        if self.changed_since_capture is not None:
            self.changed_since_capture.add(key)
        snap = self.snapshot
        if snap is None:
            return
        if key in snap.label_of:
            snap.stale.add(key)
        if alive:
            snap.fresh.add(key)
        else:
            snap.fresh.discard(key)

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        self.version = next(_versions)
        fresh = [i for i, key in enumerate(ids) if key not in self.rows]
        for i, key in enumerate(ids):
            if key in self.rows:  # replace in place
                self.matrix[self.rows[key]] = vectors[i]
            self._touch(key, alive=True)
        needed = self.used + len(fresh)
        if needed > len(self.matrix):
            capacity = len(self.matrix)
            while capacity < needed:
                capacity *= 2
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[: self.used] = self.matrix[: self.used]
            self.matrix = grown
        start = self.used
        self.matrix[start : start + len(fresh)] = vectors[fresh]
        for offset, i in enumerate(fresh):
            self.rows[ids[i]] = start + offset
            self.ids.append(ids[i])

    def remove(self, ids: Iterable[str]) -> int:
        self.version = next(_versions)
        removed = 0
        for key in ids:
            row = self.rows.pop(key, None)
            if row is not None:
                self.ids[row] = None
                self.tombstones += 1
                removed += 1
                self._touch(key, alive=False)
        if self.tombstones and self.tombstones * 4 >= self.used:
            self.compact()
        return removed

    def compact(self) -> None:
        self.version = next(_versions)
        keep = [row for row, key in enumerate(self.ids) if key is not None]
        capacity = max(_INITIAL_CAPACITY, 1 << max(len(keep) - 1, 0).bit_length())
        matrix = np.zeros((capacity, self.dim), dtype=np.float32)
        matrix[: len(keep)] = self.matrix[keep]
        self.matrix = matrix
        self.ids = [self.ids[row] for row in keep]
        self.rows = {key: row for row, key in enumerate(self.ids) if key is not None}
        self.tombstones = 0

    def capture(self) -> tuple[list[str], np.ndarray]:
        """Copy of the live rows for a graph build; changes are tracked from here on."""
        keep = [row for row, key in enumerate(self.ids) if key is not None]
        self.changed_since_capture = set()
        return [self.ids[row] for row in keep], self.matrix[keep].copy()  # type: ignore[misc]

    def install(self, snapshot: Snapshot) -> None:
        """Adopt a graph built from the last capture, reconciling changes made meanwhile."""
        for key in self.changed_since_capture or ():
            if key in snapshot.label_of:
                snapshot.stale.add(key)
            if key in self.rows:
                snapshot.fresh.add(key)
        self.snapshot = snapshot
        self.changed_since_capture = None

    # -- search -----------------------------------------------------------------------------
    def _rows_for(self, allow: Collection[str] | None) -> np.ndarray | None:
        if allow is None:
            return None
        return _lookup(self.rows, allow)

    def exact(
        self, queries: np.ndarray, k: int, allow: Collection[str] | None,
        scorer: Scorer | None = None,
    ) -> list[list[Hit]]:
        """Brute force over the live rows (optionally only ``allow``), for every query.

        ``scorer`` computes the inner products elsewhere (a device copy of this matrix).
        """
        rows = self._rows_for(allow)
        if rows is not None and rows.size == 0:
            return [[] for _ in range(len(queries))]
        if scorer is not None:
            scores = scorer(queries, rows)
        elif rows is None or rows.size * 4 > self.used:
            # A wide filter: one pass over the contiguous matrix beats gathering its rows.
            scores = queries @ self.matrix[: self.used].T
            if rows is not None:
                scores = scores[:, rows]
        else:
            scores = queries @ self.matrix[rows].T
        if rows is None and self.tombstones:
            dead = np.fromiter((key is None for key in self.ids), dtype=bool, count=self.used)
            scores[:, dead] = -np.inf
        return [self._top(line, k, rows) for line in scores]

    def _top(self, scores: np.ndarray, k: int, row_of: np.ndarray | None) -> list[Hit]:
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
        top = top[np.argsort(-scores[top], kind="stable")]
        hits = []
        for position in top:
            score = float(scores[position])
            if score == -np.inf:
                break
            row = int(row_of[position]) if row_of is not None else int(position)
            hits.append(Hit(id=self.ids[row], score=score))  # type: ignore[arg-type]
        return hits

    def approximate(
        self, queries: np.ndarray, k: int, allow: Collection[str] | None
    ) -> list[list[Hit]]:
        """Graph search over the snapshot, merged with exact search over fresh rows."""
        snap = self.snapshot
        assert snap is not None
        keep, effort = None, snap.effort
        if snap.stale or allow is not None:
            keep = np.ones(len(snap.labels), dtype=bool)
            for key in snap.stale:
                keep[snap.label_of[key]] = False
            if allow is not None:
                allowed = np.zeros(len(snap.labels), dtype=bool)
                allowed_labels = _lookup(snap.label_of, allow)
                allowed[allowed_labels] = True
                keep &= allowed
                # A filter keeping a share s of the graph needs ~1/s the breadth to find k.
                share = max(allowed_labels.size, 1) / len(snap.labels)
                effort = int(min(snap.effort / share, snap.effort * 8))
        scores, labels = snap.graph.search(queries, k, keep=keep, effort=effort)
        fresh = snap.fresh if allow is None else {key for key in snap.fresh if key in allow}
        extra = self.exact(queries, k, fresh) if fresh else [[] for _ in range(len(queries))]
        results = []
        for line_scores, line_labels, line_extra in zip(scores, labels, extra, strict=True):
            hits = [Hit(snap.labels[label], float(score))
                    for score, label in zip(line_scores, line_labels, strict=True) if label >= 0]
            merged = sorted(hits + line_extra, key=lambda hit: -hit.score)
            results.append(merged[:k])
        return results


def _lookup(positions: dict[str, int], keys: Collection[str]) -> np.ndarray:
    """Positions of the keys present in ``positions``; the set algebra runs in C, not Python."""
    present = positions.keys() & keys
    return np.fromiter(map(positions.__getitem__, present), dtype=np.int64, count=len(present))
