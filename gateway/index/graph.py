"""The ANN graph contract shared by the CPU (faiss HNSW) and GPU (cuVS CAGRA) backends.

A graph is built once from a snapshot of a partition's rows and is never mutated: rows are
addressed by their position in that snapshot ("labels"). The partition keeps track of which
labels died or changed since, and rebuilds the graph in the background past a threshold.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class AnnGraph(Protocol):
    rows: int  # how many vectors the graph was built from

    def search(
        self, queries: np.ndarray, k: int, *, keep: np.ndarray | None = None,
        effort: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k by inner product for ``queries`` float32 ``[q, dim]``.

        ``keep`` is an optional bool mask over labels (True = may be returned); ``effort``
        overrides the tuned search breadth for this call. Returns
        ``(scores [q, k], labels [q, k])``, best first; missing results have label -1.
        """

    def set_effort(self, effort: int) -> None:
        """Search breadth (HNSW efSearch / CAGRA itopk); higher = better recall, slower."""

    @property
    def nbytes(self) -> int:
        """Memory the graph holds (vectors + links), for the tier accounting."""


class GraphBuilder(Protocol):
    name: str
    efforts: tuple[int, ...]  # tried in order until the recall bound is met

    def build(self, vectors: np.ndarray) -> AnnGraph:
        """Build a graph over L2-normalised float32 ``[n, dim]`` vectors."""
