"""The read side of a partition: an immutable ``View`` that searches run on without any lock.

A writer never changes what a published view can see: it appends rows past the view's
``used`` (or into a new matrix), and publishes a new view with its own ``alive`` mask and
graph bookkeeping. So a search takes ``partition.view`` (one reference read) and computes for
as long as it needs while writes to the same partition go on; a compaction or a growth swaps
in a new matrix, and the old one lives on until the last search holding it returns.

What is shared between views and why it is safe to read while a writer runs:
- ``matrix``: rows ``[0, used)`` are never written again (an update appends a new row and
  masks the old one); writers only fill rows past every published ``used``.
- ``ids``: append-only; a view reads only its first ``used`` entries.
- ``rows`` (id -> row): brand-new ids are inserted in place (rows past ``used``, which
  ``lookup`` drops); removing or moving an id copies the dict first, so a view's own entries
  never change. Lookups run in C (``dict.keys() & set``) and never iterate it in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from gateway.index.base import Hit
from gateway.index.graph import AnnGraph

# (queries [q, dim], rows or None for all used rows) -> inner products [q, len(rows)]
Scorer = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A graph and the ids its labels stand for; never changed once built."""

    graph: AnnGraph
    labels: list[str]
    label_of: dict[str, int]
    recall: float
    effort: int


@dataclass(frozen=True, slots=True)
class View:
    matrix: np.ndarray  # [capacity, dim] float32; rows [0, used) are frozen
    ids: list[str]  # row -> id, append-only; a dead row keeps its old id (``alive`` says)
    used: int
    alive: np.ndarray  # bool [used]
    live: int
    rows: dict[str, int]  # id -> row of live ids (may hold newer ids past ``used``)
    version: int  # new on every published change: copies elsewhere (hot tier) can tell
    snapshot: Snapshot | None = None
    stale: frozenset[str] = frozenset()  # snapshot ids removed or changed since the build
    fresh: frozenset[str] = frozenset()  # ids added or changed since: searched exactly
    # Per-view memo of what every search of this view would otherwise recompute from the id
    # sets (a settled 100k-row partition may hold ~16k fresh ids). Not copied by ``replace``:
    # each published view starts empty.
    _memo: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False,
                                         compare=False)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def changed(self) -> int:
        """Rows removed or written since the snapshot: not answered by the graph alone."""
        return len(self.stale) + len(self.fresh)

    @property
    def drift(self) -> float:
        """Share of the snapshot no longer answered by the graph alone."""
        if self.snapshot is None:
            return 0.0
        return self.changed / max(len(self.snapshot.labels), 1)

    def lookup(self, keys: Collection[str]) -> np.ndarray:
        """Rows of the ``keys`` that are live in this view."""
        rows = _lookup(self.rows, keys)
        rows = rows[rows < self.used]
        return rows[self.alive[rows]]

    def live_rows(self) -> tuple[list[str], np.ndarray]:
        """Copies of the live ids and vectors (a graph build's input)."""
        keep = np.flatnonzero(self.alive)
        return [self.ids[row] for row in keep], self.matrix[keep]

    # -- search -----------------------------------------------------------------------------
    def exact(
        self, queries: np.ndarray, k: int, allow: Collection[str] | None,
        scorer: Scorer | None = None,
    ) -> list[list[Hit]]:
        """Brute force over the live rows (optionally only ``allow``), for every query.

        ``scorer`` computes the inner products elsewhere (a device copy of this matrix).
        """
        rows = None if allow is None else self.lookup(allow)
        return self._exact_rows(queries, k, rows, scorer)

    def _exact_rows(self, queries: np.ndarray, k: int, rows: np.ndarray | None,
                    scorer: Scorer | None = None) -> list[list[Hit]]:
        if rows is not None and rows.size == 0:
            return [[] for _ in range(len(queries))]
        if scorer is not None:
            scores = scorer(queries, rows)
        elif rows is None:
            scores = queries @ self.matrix[: self.used].T
        else:
            low, high = int(rows.min()), int(rows.max()) + 1
            if rows.size * 2 >= high - low or rows.size * 4 > self.used:
                # Dense in one stretch (fresh rows are appended; a wide filter): one pass over
                # the stretch in place beats copying each row out.
                scores = (queries @ self.matrix[low:high].T)[:, rows - low]
            else:
                scores = queries @ self.matrix[rows].T
        if rows is None and self.live < self.used:
            scores[:, ~self.alive] = -np.inf
        return [self._top(line, k, rows) for line in scores]

    def _fresh_rows(self) -> np.ndarray:
        rows = self._memo.get("fresh")
        if rows is None:
            rows = self._memo["fresh"] = self.lookup(self.fresh)
        return rows

    def _graph_keep(self, snap: Snapshot) -> np.ndarray | None:
        """The graph labels still live (None: all), computed once per view."""
        if not self.stale:
            return None
        keep = self._memo.get("keep")
        if keep is None:
            keep = np.ones(len(snap.labels), dtype=bool)
            keep[_lookup(snap.label_of, self.stale)] = False
            self._memo["keep"] = keep
        return keep

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
            hits.append(Hit(id=self.ids[row], score=score))
        return hits

    def approximate(
        self, queries: np.ndarray, k: int, allow: Collection[str] | None
    ) -> list[list[Hit]]:
        """Graph search over the snapshot, merged with exact search over fresh rows."""
        snap = self.snapshot
        assert snap is not None
        keep, effort = self._graph_keep(snap), snap.effort
        if allow is not None:
            allowed = np.zeros(len(snap.labels), dtype=bool)
            allowed_labels = _lookup(snap.label_of, allow)
            allowed[allowed_labels] = True
            keep = allowed if keep is None else keep & allowed
            # A filter keeping a share s of the graph needs ~1/s the breadth to find k.
            share = max(allowed_labels.size, 1) / len(snap.labels)
            effort = int(min(snap.effort / share, snap.effort * 8))
        scores, labels = snap.graph.search(queries, k, keep=keep, effort=effort)
        if allow is None:
            extra = self._exact_rows(queries, k, self._fresh_rows())
        else:
            fresh = self.fresh.intersection(allow)
            extra = (self.exact(queries, k, fresh) if fresh
                     else [[] for _ in range(len(queries))])
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
