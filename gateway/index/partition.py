"""One collection's vectors: written under its own lock, read through immutable ``View``s.

The matrix is the partition's truth in RAM (rows appended, doubling growth, dead rows
compacted past a quarter). A graph, when present, covers the rows of the snapshot it was built
from; rows added or changed since are ``fresh`` (searched exactly) and rows removed or changed
since are ``stale`` (masked out of graph results).

Writers hold ``lock`` (one per partition: writes to different users never meet) and publish
a new ``view`` for every change; searches read ``view`` without taking any lock (see
``view.py`` for why that is safe). An update of an existing id masks its old row and appends
a new one, so no row a search may be reading is ever overwritten.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Collection, Iterable

import numpy as np

from gateway.index.view import Snapshot, View

_INITIAL_CAPACITY = 16
_versions = itertools.count()  # process-wide, so no two partition states share one


class Partition:
    def __init__(self, dim: int) -> None:
        self.lock = threading.RLock()  # writers only; re-entrant for inline graph builds
        self.view = View(
            matrix=np.zeros((_INITIAL_CAPACITY, dim), dtype=np.float32), ids=[], used=0,
            alive=np.zeros(0, dtype=bool), live=0, rows={}, version=next(_versions),
        )
        self.changed_since_capture: set[str] | None = None  # tracked while a build runs
        self.building = False
        self.failed_at: int = 0  # live rows when a build last missed the recall bound
        # (live, bytes, graphs, graph rows) as last counted in the engine's totals.
        self.accounted: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def dim(self) -> int:
        return self.view.dim

    @property
    def live(self) -> int:
        return self.view.live

    @property
    def snapshot(self) -> Snapshot | None:
        return self.view.snapshot

    @property
    def nbytes(self) -> int:
        view = self.view
        graph = view.snapshot.graph.nbytes if view.snapshot else 0
        return int(view.matrix.nbytes) + graph

    def counts(self) -> tuple[int, int, int, int]:
        """(live, bytes, graphs, graph rows): this partition's share of the engine's totals."""
        snap = self.view.snapshot
        return (self.live, self.nbytes, int(snap is not None),
                len(snap.labels) if snap is not None else 0)

    # -- mutation (caller holds ``lock``) ------------------------------------------------------
    def _graph_changes(
        self, keys: Collection[str], *, alive: bool
    ) -> tuple[frozenset[str], frozenset[str]]:
        """The view's (stale, fresh) after ``keys`` were written (alive) or removed."""
        if self.changed_since_capture is not None:
            self.changed_since_capture.update(keys)
        view = self.view
        snap = view.snapshot
        if snap is None:
            return view.stale, view.fresh
        stale = view.stale | (snap.label_of.keys() & keys)
        fresh = view.fresh.union(keys) if alive else view.fresh.difference(keys)
        return stale, fresh

    def add(self, ids: list[str], vectors: np.ndarray) -> None:
        """Append the rows; an id already here gets a new row and its old one is masked."""
        view = self.view
        start, end = view.used, view.used + len(ids)
        moved = [view.rows[key] for key in ids if key in view.rows]
        matrix = view.matrix
        if end > len(matrix):
            capacity = len(matrix)
            while capacity < end:
                capacity *= 2
            matrix = np.zeros((capacity, view.dim), dtype=np.float32)
            matrix[:start] = view.matrix[:start]
        matrix[start:end] = vectors  # past every published ``used``: no search reads these
        view.ids.extend(ids)
        alive = np.concatenate([view.alive, np.ones(len(ids), dtype=bool)])
        rows = view.rows
        if moved:  # an id moves: older views must keep their own mapping
            alive[moved] = False
            rows = dict(rows)
        rows.update(zip(ids, range(start, end), strict=True))
        stale, fresh = self._graph_changes(ids, alive=True)
        self.view = dataclasses.replace(
            view, matrix=matrix, used=end, alive=alive, live=view.live + len(ids) - len(moved),
            rows=rows, version=next(_versions), stale=stale, fresh=fresh,
        )
        self._maybe_compact()

    def remove(self, ids: Iterable[str]) -> int:
        view = self.view
        gone = {key: view.rows[key] for key in ids if key in view.rows}
        if not gone:
            return 0
        rows = dict(view.rows)  # older views keep theirs
        for key in gone:
            del rows[key]
        alive = view.alive.copy()
        alive[list(gone.values())] = False
        stale, fresh = self._graph_changes(gone.keys(), alive=False)
        self.view = dataclasses.replace(
            view, alive=alive, live=view.live - len(gone), rows=rows, version=next(_versions),
            stale=stale, fresh=fresh,
        )
        self._maybe_compact()
        return len(gone)

    def _maybe_compact(self) -> None:
        view = self.view
        dead = view.used - view.live
        if dead and dead * 4 >= view.used:
            self.compact()

    def compact(self) -> None:
        """Copy the live rows into a new, tight matrix (searches on the old one carry on)."""
        view = self.view
        keep = np.flatnonzero(view.alive)
        capacity = max(_INITIAL_CAPACITY, 1 << max(len(keep) - 1, 0).bit_length())
        matrix = np.zeros((capacity, view.dim), dtype=np.float32)
        matrix[: len(keep)] = view.matrix[keep]
        ids = [view.ids[row] for row in keep]
        self.view = dataclasses.replace(
            view, matrix=matrix, ids=ids, used=len(keep), alive=np.ones(len(keep), dtype=bool),
            live=len(keep), rows={key: row for row, key in enumerate(ids)},
            version=next(_versions),
        )

    def begin_capture(self) -> View:
        """The view a graph build copies from; changes are tracked from here on."""
        self.changed_since_capture = set()
        return self.view

    def install(self, snapshot: Snapshot) -> None:
        """Adopt a graph built from the last capture, reconciling changes made meanwhile."""
        view = self.view
        changed = self.changed_since_capture or set()
        self.view = dataclasses.replace(
            view, snapshot=snapshot, stale=frozenset(snapshot.label_of.keys() & changed),
            fresh=frozenset(view.rows.keys() & changed),  # the matrix is unchanged: same version
        )
        self.changed_since_capture = None
