"""CPU ANN backend: faiss ``IndexHNSWFlat`` with inner-product metric.

Chosen over hnswlib because faiss ships manylinux wheels (hnswlib compiles from source here)
and filters through ``IDSelectorBitmap`` during the graph walk rather than after it.
"""

from __future__ import annotations

import os

import numpy as np


class HnswGraph:
    def __init__(self, index: object, rows: int) -> None:
        self._index = index
        self.rows = rows
        self._effort = 64

    def set_effort(self, effort: int) -> None:
        self._effort = effort

    @property
    def nbytes(self) -> int:
        index = self._index
        links = index.hnsw.neighbors.size() * 4  # type: ignore[attr-defined]
        return int(index.ntotal * index.d * 4 + links)  # type: ignore[attr-defined]

    def search(
        self, queries: np.ndarray, k: int, *, keep: np.ndarray | None = None,
        effort: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        # One OpenMP thread per search call (set for this thread only): a few queries gain
        # nothing from a team, and its spinning workers steal the cores from the event loop.
        faiss.omp_set_num_threads(1 if len(queries) < 64 else os.cpu_count() or 1)
        params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        params.efSearch = max(effort or self._effort, k)
        if keep is not None:
            bits = np.packbits(keep.astype(np.uint8), bitorder="little")
            selector = faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(bits))
            params.sel = selector
        scores, labels = self._index.search(queries, k, params=params)  # type: ignore[attr-defined]
        return scores, labels


class HnswBuilder:
    """Builds ``HnswGraph``s: M links per node, efConstruction breadth while inserting."""

    name: str = "hnsw"
    efforts: tuple[int, ...] = (32, 64, 128, 256, 512)

    def __init__(self, m: int = 32, ef_construction: int = 100, threads: int | None = None) -> None:
        self.m, self.ef_construction, self.threads = m, ef_construction, threads

    def build(self, vectors: np.ndarray) -> HnswGraph:
        import faiss

        if self.threads:
            faiss.omp_set_num_threads(self.threads)
        index = faiss.IndexHNSWFlat(vectors.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return HnswGraph(index, len(vectors))
