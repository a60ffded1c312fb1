"""``make bench-replica-lag``: how long a memory written on replica A takes to become
searchable on replica B, two gateway processes on one store following its change feed.

Starts Triton and two gateways (``loadtest.stack``) on one store: a shared SQLite file by
default (``MEMORY_FEED_FOLLOW=true``), or PostgreSQL with ``--store-url``. Each sample adds a
memory with a client-supplied vector through A and, from A's ``201``, polls B with a
``semantic`` search for that vector (so only B's own vector index can answer) every
``--poll-ms`` until the memory is found; the lag is the time from A's answer to B's first
answer holding it. Samples are sequential, so the figure is the feed's latency, not a queue.
Target (issue 18): p99 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.paths import RESULTS
from loadtest.stack import gateway_process, triton_server

TARGET_P99_MS = 1000.0
DIM = 384
GIVE_UP_S = 30.0  # a sample not found by then counts as lost (and fails the run)


def unit(rng: np.random.Generator) -> list[float]:
    v = rng.standard_normal(DIM).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()


def one_sample(a: httpx.Client, b: httpx.Client, vector: list[float], n: int,
               poll_s: float) -> float | None:
    added = a.post("/v1/memories", json={"user_id": "bench-replicas", "text": f"note {n}",
                                         "embedding": vector, "dedup": False})
    added.raise_for_status()
    memory_id = added.json()["id"]
    acknowledged = time.perf_counter()
    while time.perf_counter() - acknowledged < GIVE_UP_S:
        found = b.post("/v1/memories/search", json={
            "user_id": "bench-replicas", "embedding": vector, "mode": "semantic", "limit": 3})
        found.raise_for_status()
        if any(r["id"] == memory_id for r in found.json()["results"]):
            return time.perf_counter() - acknowledged
        time.sleep(poll_s)
    return None


def measure(url_a: str, url_b: str, samples: int, poll_s: float) -> dict[str, Any]:
    rng = np.random.default_rng(18)
    lags: list[float] = []
    lost = 0
    with httpx.Client(base_url=url_a, timeout=30) as a, \
            httpx.Client(base_url=url_b, timeout=30) as b:
        one_sample(a, b, unit(rng), -1, poll_s)  # warm both paths
        for n in range(samples):
            lag = one_sample(a, b, unit(rng), n, poll_s)
            if lag is None:
                lost += 1
            else:
                lags.append(lag)
        metrics = b.get("/metrics").text
    applied = [line for line in metrics.splitlines()
               if line.startswith("memory_feed_applied_seq ")]
    lag = percentiles(lags)
    return {"lag": lag | {"samples": len(lags)}, "lost": lost,
            "b_applied_seq": float(applied[0].split()[1]) if applied else None,
            "target_p99_ms": TARGET_P99_MS,
            "target_met": lost == 0 and lag["p99_ms"] <= TARGET_P99_MS}


def table(report: dict[str, Any]) -> str:
    lag = report["lag"]
    return "\n".join([
        "| store | A's 201 → searchable on B: p50 ms | p95 ms | p99 ms | samples | lost |",
        "|---|---:|---:|---:|---:|---:|",
        f"| {report['store']} | {lag['p50_ms']} | {lag['p95_ms']} | {lag['p99_ms']} | "
        f"{lag['samples']} | {report['lost']} |"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.replica_lag",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--poll-ms", type=float, default=5.0, help="how often B is searched")
    parser.add_argument("--feed-poll-ms", type=float, default=50.0,
                        help="MEMORY_FEED_POLL_MS of both gateways (SQLite's feed poll)")
    parser.add_argument("--store-url", default=None,
                        help="MEMORY_STORE_URL of both replicas (default: one SQLite file)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    env = {"MEMORY_FEED_FOLLOW": "true", "MEMORY_FEED_POLL_MS": str(args.feed_poll_ms)}
    if args.store_url:
        env["MEMORY_STORE_URL"] = args.store_url
    report: dict[str, Any] = {
        "benchmark": "replica-lag", "cpus": os.cpu_count(),
        "store": "postgresql" if args.store_url else "sqlite (one file, two processes)",
        "feed_poll_ms": args.feed_poll_ms, "client_poll_ms": args.poll_ms,
        "load_average_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as scratch, \
            triton_server(Path(scratch) / "triton") as triton, \
            gateway_process(triton, Path(scratch) / "data", Path(scratch) / "a", env) as a, \
            gateway_process(triton, Path(scratch) / "data", Path(scratch) / "b", env) as b:
        report |= measure(a, b, args.samples, args.poll_ms / 1000)
    report["load_average_end"] = os.getloadavg()[0]
    write_report(args.out, "bench-replica-lag", report, print)
    print(table(report))
    return 0 if report["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
