"""Latency figures from wall-clock samples in seconds, shared by the benchmarks that time calls."""

from __future__ import annotations

import numpy as np


def percentiles(samples_s: list[float]) -> dict[str, float]:
    """p50, p95, p99 and mean in milliseconds."""
    ms = np.asarray(samples_s) * 1000
    return {f"p{p}_ms": round(float(np.percentile(ms, p)), 3) for p in (50, 95, 99)} | {
        "mean_ms": round(float(ms.mean()), 3)}
