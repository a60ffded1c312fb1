"""k-means cells for the merge job: each memory's two nearest centroids, so near duplicates are
looked for only among the memories that share a cell.

Two twins with one contract: faiss k-means on CPU, and on a visible CUDA device with the
``[gpu]`` extra (cupy + cuVS) cuVS k-means, with the two nearest centroids found by one cupy
matmul. ``cluster_cells`` picks the GPU twin when ``gateway.index.factory.gpu_available`` says
so (checked once), the CPU one otherwise, like the index backends.

Both are spherical: inputs are L2-normalised vectors, centroids are normalised after training
and a row's cells are the centroids of highest inner product. cuVS trains with L2 distance,
which on unit vectors ranks like cosine; it has no seed parameter, so its cells may differ from
run to run (the merge rule itself does not depend on which cell finds a pair).
"""

from __future__ import annotations

import functools

import faiss
import numpy as np

from gateway.index.factory import gpu_available

CLUSTER_SIZE = 64  # memories per k-means cluster, on average
KMEANS_ITERATIONS = 10
KMEANS_SEED = 1234
KMEANS_RESTARTS = 1  # initialisations; a poor one is covered by the second-nearest cell
CELLS_PER_ROW = 2


def cluster_count(rows: int, cluster_size: int = CLUSTER_SIZE) -> int:
    """Centroids for ``rows`` vectors; below 2 the whole set is one cell."""
    return rows // cluster_size


def one_cell(rows: int) -> np.ndarray:
    return np.zeros((rows, 1), dtype=np.int64)


def cpu_cluster_cells(vectors: np.ndarray, cluster_size: int = CLUSTER_SIZE) -> np.ndarray:
    """The two nearest faiss k-means centroids of each row, ``[n, 2]`` int64 (``[n, 1]`` of
    zeros below two clusters' worth)."""
    k = cluster_count(len(vectors), cluster_size)
    if k < 2:
        return one_cell(len(vectors))
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    kmeans = faiss.Kmeans(data.shape[1], k, niter=KMEANS_ITERATIONS, seed=KMEANS_SEED,
                          spherical=True, verbose=False, min_points_per_centroid=1,
                          nredo=KMEANS_RESTARTS)
    kmeans.train(data)
    _, cells = kmeans.index.search(data, CELLS_PER_ROW)
    return cells.astype(np.int64)


def gpu_cluster_cells(vectors: np.ndarray, cluster_size: int = CLUSTER_SIZE) -> np.ndarray:
    """The GPU twin of ``cpu_cluster_cells``: cuVS k-means on the device, then the two
    nearest (normalised) centroids of each row by inner product; same shape and dtype."""
    import cupy as cp
    from cuvs.cluster import kmeans

    k = cluster_count(len(vectors), cluster_size)
    if k < 2:
        return one_cell(len(vectors))
    data = cp.asarray(np.ascontiguousarray(vectors, dtype=np.float32))
    params = kmeans.KMeansParams(n_clusters=k, max_iter=KMEANS_ITERATIONS,
                                 n_init=KMEANS_RESTARTS, init_method="KMeansPlusPlus")
    centroids, _, _ = kmeans.fit(params, data)
    centroids = cp.asarray(centroids, dtype=cp.float32)
    norms = cp.linalg.norm(centroids, axis=1, keepdims=True)
    centroids /= cp.maximum(norms, cp.float32(1e-12))  # an empty cluster keeps a zero row
    scores = data @ centroids.T
    top = cp.argpartition(-scores, CELLS_PER_ROW - 1, axis=1)[:, :CELLS_PER_ROW]
    order = cp.argsort(-cp.take_along_axis(scores, top, axis=1), axis=1)
    return cp.asnumpy(cp.take_along_axis(top, order, axis=1)).astype(np.int64)


@functools.cache
def uses_gpu() -> bool:
    return gpu_available()


def cluster_cells(vectors: np.ndarray, cluster_size: int = CLUSTER_SIZE) -> np.ndarray:
    """Each row's two nearest k-means centroids (see the module docstring): two, so near
    duplicates that a centroid boundary (or a poor local optimum of k-means) splits still
    share a cell. ``cluster_size``: rows per cluster on average (the compress job groups
    finer than merge). CPU-heavy or GPU work: call it from a worker thread."""
    return (gpu_cluster_cells(vectors, cluster_size) if uses_gpu()
            else cpu_cluster_cells(vectors, cluster_size))


def cluster_rows(vectors: np.ndarray, rows: list[int], cluster_size: int = CLUSTER_SIZE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``vectors[rows]`` and their ``cluster_cells``: the row copy (a whole user's matrix)
    belongs on the worker thread too, not on the event loop."""
    chosen = vectors[rows]
    return chosen, cluster_cells(chosen, cluster_size)
