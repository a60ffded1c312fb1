"""GPU ANN backend: cuVS CAGRA graphs, and exact cupy search for partitions too small for one.

Imported only when the GPU path is chosen (``gateway.index.factory``), so the CPU install never
needs cupy or cuVS. The engine calls search from its search thread only (the micro-batcher
owns it), which serialises GPU work on one thread as cuVS expects. CAGRA cannot delete: the
engine masks removed rows with the filter bitset and rebuilds past its drift threshold.
Below ``min_rows`` (CAGRA builds are slow or fail on small sets) the partition's vectors go to
VRAM as a matrix searched exactly with one matmul per batch.
"""

from __future__ import annotations

import numpy as np

_MISSING = np.iinfo(np.uint32).max


def _keep_bitset(keep: np.ndarray):  # cupy array
    """Bool mask -> uint32 bitset on the device (bit i of word i//32 = row i, 1 = keep)."""
    import cupy as cp

    bits = np.packbits(keep.astype(np.uint8), bitorder="little")
    bits = np.pad(bits, (0, -len(bits) % 4))
    return cp.asarray(bits.view(np.uint32))


class CupyExactGraph:
    """Exact inner-product search with the vectors resident in VRAM."""

    def __init__(self, vectors: np.ndarray) -> None:
        import cupy as cp

        self._data = cp.asarray(vectors, dtype=cp.float32)
        self.rows = len(vectors)

    def set_effort(self, effort: int) -> None:  # exact: nothing to tune
        pass

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes)

    def search(
        self, queries: np.ndarray, k: int, *, keep: np.ndarray | None = None,
        effort: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        import cupy as cp

        scores = cp.asarray(queries, dtype=cp.float32) @ self._data.T
        if keep is not None:
            scores[:, cp.asarray(~keep)] = -cp.inf
        k = min(k, self.rows)
        top = cp.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = cp.take_along_axis(scores, top, axis=1)
        order = cp.argsort(-top_scores, axis=1)
        labels = cp.take_along_axis(top, order, axis=1)
        ordered = cp.take_along_axis(top_scores, order, axis=1)
        labels[cp.isinf(ordered)] = -1
        return cp.asnumpy(ordered), cp.asnumpy(labels).astype(np.int64)


class CagraGraph:
    def __init__(self, index: object, rows: int, dim: int, degree: int) -> None:
        self._index = index
        self.rows = rows
        self._dim, self._degree = dim, degree
        self._effort = 64

    def set_effort(self, effort: int) -> None:
        self._effort = effort

    @property
    def nbytes(self) -> int:
        return self.rows * (self._dim * 4 + self._degree * 4)

    def search(
        self, queries: np.ndarray, k: int, *, keep: np.ndarray | None = None,
        effort: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        import cupy as cp
        from cuvs.neighbors import cagra, filters

        params = cagra.SearchParams(itopk_size=max(effort or self._effort, k))
        extra = {}
        if keep is not None:
            extra["filter"] = filters.from_bitset(_keep_bitset(keep))
        distances, neighbors = cagra.search(
            params, self._index, cp.asarray(queries, dtype=cp.float32), k, **extra
        )
        labels = cp.asnumpy(cp.asarray(neighbors)).astype(np.int64)
        labels[(labels < 0) | (labels >= self.rows) | (labels == _MISSING)] = -1
        return cp.asnumpy(cp.asarray(distances)), labels


class CagraBuilder:
    name: str = "cagra"
    efforts: tuple[int, ...] = (32, 64, 128, 256, 512)

    def __init__(self, graph_degree: int = 64, intermediate_degree: int = 128,
                 min_rows: int = 100_000) -> None:
        self.graph_degree = graph_degree
        self.intermediate_degree = intermediate_degree
        self.min_rows = min_rows

    def build(self, vectors: np.ndarray) -> CagraGraph | CupyExactGraph:
        if len(vectors) < self.min_rows:
            return CupyExactGraph(vectors)
        import cupy as cp
        from cuvs.neighbors import cagra

        params = cagra.IndexParams(
            metric="inner_product",
            graph_degree=self.graph_degree,
            intermediate_graph_degree=self.intermediate_degree,
            build_algo="nn_descent",
        )
        index = cagra.build(params, cp.asarray(vectors, dtype=cp.float32))
        return CagraGraph(index, len(vectors), vectors.shape[1], self.graph_degree)
