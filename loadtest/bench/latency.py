"""``make bench-latency``: search latency through HTTP, the query-path settings side by side.

One Triton server and one store, seeded once; then a gateway per variant on that store, each
measured the same way in the same run:

- single client, text queries over a user with ``--small`` memories (semantic and hybrid), the
  same user searched with a client-supplied embedding (the floor: no Triton), and text queries
  over a user with ``--large`` memories;
- ``--clients`` concurrent clients, each searching its own ``--small``-memory user;
- the query-cache hit ratio on the load-test mix (``loadtest.population.query_text``);
- sequential single-text adds (the coalesced twin; the batching model under ``no-twin``),
  with stalls over 100 ms.

Latency queries are made unique (a counter suffix), so the query cache never answers them.
Memories carry random unit vectors (client-supplied at seeding, so seeding skips Triton); their
texts are realistic, so keyword search does real work. Variants: ``default`` (the shipped
settings: queries embedded in the gateway by the int8 query graph, one ONNX Runtime thread,
the speaker boost and session lift on), ``fp32-query`` (the fp32 graph), ``no-reordering``
(both off: hybrid reads only ``limit`` memories), ``before-query-path`` (fp32 and both off:
the defaults before them), ``encoder-threads-2``
(two), ``triton`` (queries embedded by Triton's batcher-free twin), ``no-twin`` (by the
batching model), ``threads-2`` (two BLAS threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from loadtest.paths import RESULTS
from loadtest.population import memory_text, query_text
from loadtest.stack import gateway_process, triton_server

VARIANTS = {
    "default": {},
    "fp32-query": {"MEMORY_QUERY_PRECISION": "fp32"},
    "no-reordering": {"MEMORY_SEARCH_SPEAKER_BOOST": "1", "MEMORY_SEARCH_SESSION_WEIGHT": "0"},
    "before-query-path": {"MEMORY_QUERY_PRECISION": "fp32", "MEMORY_SEARCH_SPEAKER_BOOST": "1",
                          "MEMORY_SEARCH_SESSION_WEIGHT": "0"},
    "encoder-threads-2": {"MEMORY_QUERY_ENCODER_THREADS": "2"},
    "triton": {"MEMORY_QUERY_ENCODER": "triton"},
    "no-twin": {"MEMORY_QUERY_ENCODER": "triton", "MEMORY_QUERY_TWIN": "false"},
    "threads-2": {"MEMORY_COMPUTE_THREADS": "2"},
}
SEED_BATCH = 500


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_ms)
    return {f"p{p}_ms": round(float(np.percentile(ms, p)), 2) for p in (50, 90, 99)} | {
        "max_ms": round(float(ms.max()), 2), "n": len(samples_ms)}


def unit_vectors(count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    vectors = rng.normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def seed(url: str, users: dict[str, int], dim: int) -> None:
    rng, texts = np.random.default_rng(0), random.Random(0)
    with httpx.Client(base_url=url, timeout=120) as http:
        for user, count in users.items():
            log(f"  seeding {user}: {count} memories")
            for start in range(0, count, SEED_BATCH):
                size = min(SEED_BATCH, count - start)
                vectors = unit_vectors(size, dim, rng)
                items = [{"user_id": user, "text": memory_text(texts),
                          "embedding": [round(float(x), 6) for x in v]} for v in vectors]
                response = http.post("/v1/memories/batch", json={"items": items, "dedup": False})
                response.raise_for_status()


def timed_searches(http: httpx.Client, bodies: list[dict]) -> list[float]:
    samples = []
    for body in bodies:
        started = time.perf_counter()
        response = http.post("/v1/memories/search", json=body)
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"search failed: {response.status_code} {response.text[:200]}")
    return samples


def text_bodies(user: str, count: int, tag: str, **extra: object) -> list[dict]:
    rng = random.Random(tag)
    return [{"user_id": user, "query": f"{query_text(rng)} #{tag}{i}", "limit": 10} | extra
            for i in range(count)]


def concurrent(url: str, users: list[str], per_client: int) -> dict:
    samples: list[float] = []
    lock, errors = threading.Lock(), []

    def client(user: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            try:
                mine = timed_searches(http, text_bodies(user, per_client, f"c-{user}"))
            except Exception as exc:  # reported, not raised from a thread
                errors.append(str(exc))
                return
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(u,)) for u in users]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"concurrent searches failed: {errors[:3]}")
    return percentiles(samples) | {"searches_per_s": round(len(samples) / seconds, 1),
                                   "clients": len(users)}


def _single_adds(http: httpx.Client, count: int) -> dict:
    """Sequential one-text adds: percentiles and stalls over 100 ms."""
    rng, samples = random.Random(5), []
    for i in range(count):
        started = time.perf_counter()
        response = http.post("/v1/memories", json={"user_id": "adds",
                                                   "text": f"{memory_text(rng)} #{i}"})
        samples.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return percentiles(samples) | {"over_100ms": sum(1 for ms in samples if ms > 100)}


def cache_counts(http: httpx.Client) -> tuple[float, float]:
    text = http.get("/metrics").text
    found = dict(re.findall(r'memory_query_cache\{outcome="(\w+)"\} ([0-9.e+]+)', text))
    return float(found.get("hits", 0)), float(found.get("misses", 0))


def resident_mb(http: httpx.Client) -> float:
    """The gateway process's resident memory, from its /metrics (process collector)."""
    found = re.search(r"^process_resident_memory_bytes ([0-9.e+]+)$", http.get("/metrics").text,
                      re.M)
    return round(float(found.group(1)) / 2**20, 1) if found else float("nan")


def measure(url: str, args: argparse.Namespace, dim: int) -> dict:
    result: dict = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        timed_searches(http, text_bodies("small", 30, "warm"))  # connections, caches, JIT
        n = args.searches
        result["small_text_semantic"] = percentiles(timed_searches(
            http, text_bodies("small", n, "ss", mode="semantic")))
        result["small_text_hybrid"] = percentiles(timed_searches(
            http, text_bodies("small", n, "sh", mode="hybrid")))
        vectors = unit_vectors(n, dim, np.random.default_rng(1))
        repeated = {"user_id": "small", "query": text_bodies("small", 1, "rep")[0]["query"],
                    "limit": 10, "mode": "hybrid"}
        result["small_text_hybrid_cached"] = percentiles(timed_searches(
            http, [repeated] * n))  # one text: every search after the first hits the cache
        result["small_embedding"] = percentiles(timed_searches(http, [
            {"user_id": "small", "embedding": v.tolist(), "limit": 10} for v in vectors]))
        result["large_text_semantic"] = percentiles(timed_searches(
            http, text_bodies("large", n, "ls", mode="semantic")))
        result["large_text_hybrid"] = percentiles(timed_searches(
            http, text_bodies("large", n, "lh", mode="hybrid")))
        result["single_add"] = _single_adds(http, n)
        hits0, misses0 = cache_counts(http)
        rng = random.Random(7)
        timed_searches(http, [{"user_id": "small", "query": query_text(rng)}
                              for _ in range(args.mix_searches)])
        hits1, misses1 = cache_counts(http)
        lookups = (hits1 - hits0) + (misses1 - misses0)
        result["cache_on_loadtest_mix"] = {
            "searches": args.mix_searches, "hit_ratio": round((hits1 - hits0) / lookups, 3)
            if lookups else None}
        result["gateway_resident_mb"] = resident_mb(http)
    result["concurrent_text"] = concurrent(
        url, [f"c{i}" for i in range(args.clients)], args.per_client)
    gap = result["small_text_semantic"]["p50_ms"] - result["small_embedding"]["p50_ms"]
    result["text_minus_embedding_p50_ms"] = round(gap, 2)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.latency",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=1000, help="memories of the small users")
    parser.add_argument("--large", type=int, default=10_000, help="memories of the large user")
    parser.add_argument("--searches", type=int, default=300, help="searches per measurement")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=150)
    parser.add_argument("--mix-searches", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    # Measure the query path alone: no shedding or deadlines in the way.
    quiet = {"MEMORY_ADMISSION_ENABLED": "false", "MEMORY_DEADLINE_SEARCH_MS": "0",
             "MEMORY_DEADLINE_INGEST_MS": "0"}
    report: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": {"cpus": os.cpu_count(),
                                "python": platform.python_version()},
                    "args": {k: v for k, v in vars(args).items() if k != "out"},
                    "variants": {}}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch:
        work = Path(scratch)
        with triton_server(work / "triton") as triton:
            users = {"small": args.small, "large": args.large} | {
                f"c{i}": args.small for i in range(args.clients)}
            for name in chosen:
                log(f"variant {name} {VARIANTS[name] or ''}")
                env = quiet | VARIANTS[name]
                with gateway_process(triton, work / "data", work / name, env=env) as url:
                    dim = _dim(url)
                    if not report["variants"]:
                        log("seeding (client vectors, no Triton) ...")
                        seed(url, users, dim)
                    report["variants"][name] = measure(url, args, dim)
                    log(json.dumps(report["variants"][name]))
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / f"bench-latency-{int(time.time())}.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    log(f"wrote {out}")
    return 0


def _dim(url: str) -> int:
    """The active model's dimension, from /readyz's model label and a probe search."""
    label = httpx.get(f"{url}/readyz").json()["checks"]["model"]
    probe = httpx.post(f"{url}/v1/memories/search",
                       json={"user_id": "nobody", "embedding": [1.0]})
    match = re.search(r"expected (\d+) dimensions", probe.text)
    if match is None:
        raise RuntimeError(f"cannot learn the dimension of {label}: {probe.text[:200]}")
    return int(match.group(1))


if __name__ == "__main__":
    raise SystemExit(main())
