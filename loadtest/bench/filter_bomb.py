"""``make bench-filter-bomb``: how fast a Mem0 filter bomb is refused, and what /healthz waits.

Issue 19, finding 2: a read key could send a filter of 2,000 metadata keys with 100 ``in``
values each (1.4 MB) against a user of 1,000 memories; it took 1.1 s, all of it on the event
loop, and every tenant waited. Now a search or list body past 256 KiB is a 413 before its JSON
is decoded (``gateway/api/mem0/bounded.py``), and a smaller filter past ``MAX_FILTER_NODES`` or
``MAX_FILTER_TERMS`` a 422 at parse time.

One Triton server and one gateway process (``loadtest.stack``); one user seeded with
``--memories`` memories (client vectors, so seeding skips Triton); then, for each ``--scales``
factor, the bomb of ``--keys`` x factor metadata keys with ``--values`` ``in`` values each (and
one of ``--under-cap-keys`` keys, small enough to be decoded and refused by the filter budget)
is sent ``--repeats`` times to ``POST /v2/memories/search/``, while a second client polls
``/healthz`` back to back. ``--before DIR`` measures a gateway from another checkout first, on
the same Triton. The report gives each bomb's size, answers and answer times, and /healthz
latency idle and meanwhile. Target (the 1x bomb): refused in <= 50 ms (median answer) and
/healthz p99 <= 20 ms meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from loadtest.bench.latency import _dim, percentiles, unit_vectors
from loadtest.bench.report_file import write_report
from loadtest.paths import RESULTS
from loadtest.stack import gateway_process, triton_server

USER = "bomb-target"
SEED_BATCH = 500
TARGET_REFUSE_MS, TARGET_HEALTH_MS = 50.0, 20.0
IDLE_HEALTH_POLLS = 200


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def seed(url: str, count: int, dim: int) -> None:
    vectors = unit_vectors(count, dim, np.random.default_rng(0))
    items = [{"user_id": USER, "text": f"memory number {i} about topic {i % 37}",
              "metadata": {"key0": i % 100, "key1": f"v{i % 7}"},
              "embedding": [round(float(x), 6) for x in vectors[i]]} for i in range(count)]
    with httpx.Client(base_url=url, timeout=120) as http:
        for start in range(0, count, SEED_BATCH):
            http.post("/v1/memories/batch", json={"items": items[start:start + SEED_BATCH],
                                                  "dedup": False}).raise_for_status()


def bomb(keys: int, values: int) -> bytes:
    """The filter bomb: ``keys`` metadata keys, each with ``values`` ``in`` values."""
    metadata = {f"key{i}": {"in": [f"v{j}" for j in range(values)]} for i in range(keys)}
    return json.dumps({"query": "topic", "top_k": 10,
                       "filters": {"user_id": USER, "metadata": metadata}}).encode()


class HealthPoller:
    """Polls /healthz back to back on its own connection until stopped; latencies in ms."""

    def __init__(self, url: str) -> None:
        self.url, self.samples = url, []  # type: ignore[var-annotated]
        self._stop, self._first = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                http.get("/healthz").raise_for_status()
                self.samples.append((time.perf_counter() - started) * 1000)
                self._first.set()

    def __enter__(self) -> HealthPoller:
        self._thread.start()
        self._first.wait(30)  # polling runs before the first bomb leaves
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def idle_health(url: str, polls: int) -> list[float]:
    samples = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(polls):
            started = time.perf_counter()
            http.get("/healthz").raise_for_status()
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def send_bombs(url: str, body: bytes, repeats: int) -> tuple[list[float], list[int], str]:
    """Answer times (ms from the first byte sent to the whole answer read), statuses, and
    the last answer's detail."""
    times, statuses, detail = [], [], ""
    with httpx.Client(base_url=url, timeout=120) as http:
        for _ in range(repeats):
            started = time.perf_counter()
            answer = http.post("/v2/memories/search/", content=body,
                               headers={"content-type": "application/json"})
            times.append((time.perf_counter() - started) * 1000)
            statuses.append(answer.status_code)
            detail = str(answer.json().get("detail", ""))[:200] \
                if answer.status_code != 200 else ""
    return times, statuses, detail


def measure(url: str, sizes: list[tuple[float, int]], args: argparse.Namespace) -> dict:
    """Seed the user, time /healthz idle, then send each bomb while /healthz is polled."""
    log(f"seeding {args.memories} memories ...")
    seed(url, args.memories, _dim(url))
    bombs = []
    result: dict = {"healthz_idle": percentiles(idle_health(url, IDLE_HEALTH_POLLS))}
    for scale, keys in sizes:
        body = bomb(keys, args.values)
        with HealthPoller(url) as poller:
            times, statuses, detail = send_bombs(url, body, args.repeats)
        entry = {"scale": scale, "keys": keys, "in_values": args.values,
                 "body_bytes": len(body), "statuses": sorted(set(statuses)),
                 "detail": detail, "answer": percentiles(times)
                 | {"median_ms": round(statistics.median(times), 2)},
                 "healthz_meanwhile": percentiles(poller.samples)}
        bombs.append(entry)
        log(f"bomb x{scale}: {json.dumps(entry)}")
    return result | {"bombs": bombs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.filter_bomb",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=1_000, help="memories of the user")
    parser.add_argument("--keys", type=int, default=2_000, help="metadata keys of the 1x bomb")
    parser.add_argument("--values", type=int, default=100, help="'in' values per key")
    parser.add_argument("--scales", default="1,10", help="bomb sizes, as factors of --keys")
    parser.add_argument("--under-cap-keys", type=int, default=300,
                        help="keys of one more bomb, under the body cap (parse-time 422); "
                        "0: none")
    parser.add_argument("--repeats", type=int, default=10, help="sends of each bomb")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run a gateway from this checkout, first, for comparison "
                        "(its figures go under 'before')")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes: list[tuple[float, int]] = [(int(s), args.keys * int(s))
                                      for s in args.scales.split(",") if s.strip()]
    if args.under_cap_keys:
        sizes.append((round(args.under_cap_keys / args.keys, 3), args.under_cap_keys))
    report: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "load_average": {"start": os.getloadavg()[0]},
                    "targets": {"refused_p50_ms": TARGET_REFUSE_MS,
                                "healthz_p99_ms": TARGET_HEALTH_MS}}
    with tempfile.TemporaryDirectory(prefix="bench-filter-bomb-") as scratch, \
            triton_server(Path(scratch) / "triton") as triton:
        if args.before:
            tree = args.before.resolve()
            with gateway_process(triton, Path(scratch) / "before", Path(scratch) / "gw-before",
                                 env={"PYTHONPATH": str(tree)}, cwd=tree) as url:
                report["before"] = {"checkout": str(tree)} | measure(url, sizes, args)
        with gateway_process(triton, Path(scratch) / "data", Path(scratch) / "gateway") as url:
            report |= measure(url, sizes, args)
    report["load_average"]["end"] = os.getloadavg()[0]
    first = report["bombs"][0]
    report["target_met"] = (set(first["statuses"]) <= {413, 422}
                            and first["answer"]["median_ms"] <= TARGET_REFUSE_MS
                            and first["healthz_meanwhile"]["p99_ms"] <= TARGET_HEALTH_MS)
    write_report(args.out, "bench-filter-bomb", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
