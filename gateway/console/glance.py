"""Admission and latency at a glance, read from the gateway's own Prometheus registry (the
numbers ``/metrics`` serves), never from a second bookkeeping of its own."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

QUANTILES = (0.5, 0.99)
MAX_ROUTES = 50


@dataclass
class Glance:
    admission: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> stat
    shed: dict[str, float] = field(default_factory=dict)  # "class/reason" -> count
    routes: list[dict[str, Any]] = field(default_factory=list)  # busiest first
    store: dict[str, float] = field(default_factory=dict)


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding quantile ``q`` (cumulative (le, count) pairs,
    sorted): what a histogram can say, an upper estimate."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    target = q * buckets[-1][1]
    for upper, count in buckets:
        if count >= target:
            return upper if math.isfinite(upper) else None  # past the last bound: unknown
    return None


def read(registry: CollectorRegistry) -> Glance:
    glance = Glance()
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    counts: dict[tuple[str, str], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if family.name.startswith("memory_admission_") and "route_class" in labels:
                if family.name == "memory_admission_shed":
                    if sample.name.endswith("_total"):
                        glance.shed[f"{labels['route_class']}/{labels['reason']}"] = sample.value
                    continue
                stat = family.name.removeprefix("memory_admission_")
                glance.admission.setdefault(labels["route_class"], {})[stat] = sample.value
            elif family.name == "memory_http_request_seconds":
                route = (labels.get("method", ""), labels.get("route", ""))
                if sample.name.endswith("_bucket"):
                    buckets[route].append((float(labels["le"]), sample.value))
                elif sample.name.endswith("_count"):
                    counts[route] = sample.value
            elif family.name in ("memory_store_memories", "memory_store_users"):
                glance.store[family.name.removeprefix("memory_store_")] = sample.value
    busiest = sorted(counts, key=lambda r: -counts[r])[:MAX_ROUTES]
    for route in busiest:
        ordered = sorted(buckets[route])
        glance.routes.append({"method": route[0], "route": route[1], "count": int(counts[route]),
                              **{f"p{round(q * 100)}": bucket_quantile(ordered, q)
                                 for q in QUANTILES}})
    return glance
