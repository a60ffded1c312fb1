"""How a graph is judged before it may answer: recall@k against exact search, on queries near
the data but not in it."""

from __future__ import annotations

import numpy as np

from gateway.index.graph import AnnGraph


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
