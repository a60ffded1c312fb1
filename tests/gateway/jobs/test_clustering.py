"""The merge job's k-means cells on planted clusters: the CPU twin (faiss) here, and the GPU
twin (cuVS) against it where a CUDA device with the ``[gpu]`` extra is visible."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.index.factory import gpu_available
from gateway.jobs.clustering import CLUSTER_SIZE, cpu_cluster_cells, gpu_cluster_cells

CLUSTERS = 12
MIN_RECOVERY = 0.99  # share of same-cluster pairs that share a cell
# Share of rows whose nearest cell's majority is their own cluster: one k-means
# initialisation merges a few planted clusters into one cell (faiss, seeds 0-4: 0.67-0.83);
# the merge job only pays for that in comparisons, never in missed pairs.
MIN_PURITY = 0.6


def planted(seed: int = 0, dim: int = 64, noise: float = 0.08) -> tuple[np.ndarray, np.ndarray]:
    """``CLUSTERS`` tight groups of ``CLUSTER_SIZE`` unit vectors around random centres,
    shuffled; returns the vectors and each row's planted cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim))
    truth = rng.permutation(np.repeat(np.arange(CLUSTERS), CLUSTER_SIZE))
    rows = centres[truth] / np.sqrt(dim) + noise * rng.standard_normal((len(truth), dim)) / 8
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32), truth


def recovery(cells: np.ndarray, truth: np.ndarray) -> float:
    """Share of same-cluster pairs that share at least one cell (what the merge job needs:
    duplicates it can compare)."""
    shared = (cells[:, None, :, None] == cells[None, :, None, :]).any(axis=(2, 3))
    same = truth[:, None] == truth[None, :]
    return float(shared[same].mean())


def purity(cells: np.ndarray, truth: np.ndarray) -> float:
    """Share of rows whose nearest cell's majority cluster is their own (cells not mixing
    clusters keep the pairwise comparisons few)."""
    nearest = cells[:, 0]
    majority = {c: np.bincount(truth[nearest == c]).argmax() for c in np.unique(nearest)}
    return float(np.mean([majority[c] == t for c, t in zip(nearest, truth, strict=True)]))


def test_cpu_cells_recover_planted_clusters() -> None:
    vectors, truth = planted()
    cells = cpu_cluster_cells(vectors)
    assert cells.shape == (len(vectors), 2) and cells.dtype == np.int64
    assert recovery(cells, truth) >= MIN_RECOVERY
    assert purity(cells, truth) >= MIN_PURITY
    assert cpu_cluster_cells(vectors[: CLUSTER_SIZE]).shape == (CLUSTER_SIZE, 1)  # one cell


def test_noise_is_what_breaks_recovery() -> None:
    """The measure can fail: without planted structure, pairs rarely share a cell."""
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((CLUSTERS * CLUSTER_SIZE, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    _, truth = planted()
    assert recovery(cpu_cluster_cells(vectors), truth) < 0.5


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="no CUDA device with cupy + cuVS visible")
def test_gpu_cells_match_the_cpu_quality() -> None:
    gpu_purity, cpu_purity = [], []
    for seed in range(5):
        vectors, truth = planted(seed)
        gpu, cpu = gpu_cluster_cells(vectors), cpu_cluster_cells(vectors)
        assert gpu.shape == cpu.shape and gpu.dtype == cpu.dtype
        assert recovery(gpu, truth) >= MIN_RECOVERY
        gpu_purity.append(purity(gpu, truth))
        cpu_purity.append(purity(cpu, truth))
    assert min(gpu_purity) >= MIN_PURITY
    assert np.mean(gpu_purity) >= np.mean(cpu_purity) - 0.1
