"""``make bench-concurrency``: write latency while 8 clients search a 100k-memory user.

One user (``heavy``) gets ``--memories`` memories with client-supplied vectors (seeded
through ``/v1/memories/batch``, so no Triton time) and short texts of a 23-word vocabulary
(``common_words``: every query word is common). ``--index shipped`` (the default) runs the
gateway's shipped index, seeded with vectors made from the model's embeddings of each
memory's words (``common_words.WordVectors``: structured as text embeddings are, so graphs can
index them), and waits until its graph builds are done; ``--index exact`` forces an exact
index and random unit vectors, so every vector search is a full scan of its rows: the heaviest
search there is. Then, on the same gateway:

- idle: ``--writes`` single writes (``POST /v1/memories``) to other users, one at a time,
  alternating a text write (embedded by Triton) and a write with a client-supplied vector;
- loaded, once per search mode of ``--modes``: the same writes while ``--clients`` clients
  search ``heavy`` back to back (from a separate process, so the writer's timings do not share
  a GIL with them). ``semantic`` searches with client vectors (no keyword half, no query
  embedding); ``hybrid`` and ``keyword`` with unique five-word text queries (``hybrid``
  embeds each one and runs both halves; ``keyword`` runs BM25 alone).

The figure of merit is each write kind's loaded p99 over its idle p99 (target: <= 2). The
``engine`` part (``loadtest/bench/engine_probe.py``) measures the same without HTTP, Triton or
SQLite: single-row index adds for one user while a thread searches the heavy user in batches
of 8, which isolates waiting on the index from sharing the CPU.
``--before DIR`` runs the same steps first on a gateway started from another checkout
(e.g. ``git worktree add /tmp/before <commit>``), so before and after sit side by side in one
JSON under ``loadtest/results/``. Both gateways use this tree's model repository and Triton.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from gateway.settings import ROOT
from gateway.triton import TritonServer
from loadtest.bench.common_words import SERVED_VERSION, WordVectors, memory_text, query_text
from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.corpus import sentences
from loadtest.paths import RESULTS
from loadtest.stack import gateway_process, triton_server, wait_for_index

HEAVY_USER = "heavy"
MODES = ("semantic", "hybrid", "keyword")
SEED_BATCH = 1000  # items per seeding request (~4 MB of JSON with 384-d vectors)
READY_TIMEOUT_S = 180
# Admission control off: the figure is how writes fare beside searches, not what is refused.
SETTINGS = {"MEMORY_ADMISSION_ENABLED": "false"}
INDEXES = {"shipped": {}, "exact": {"MEMORY_INDEX_BACKEND": "exact"}}


def log(message: str) -> None:
    print(f"[bench-concurrency] {message}", file=sys.stderr, flush=True)


def unit_vectors(count: int, dim: int, seed: int) -> list[list[float]]:
    rows = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return np.round(rows, 6).tolist()


def revision(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "-C", str(tree), "status", "--porcelain", "gateway"],
                           capture_output=True, text=True, check=False).stdout.strip()
    return done.stdout.strip() + ("+uncommitted" if dirty else "")


@contextlib.contextmanager
def gateway_from(tree: Path, triton: TritonServer, work: Path,
                 extra_env: dict[str, str]) -> Iterator[str]:
    """``python -m gateway`` from the checkout ``tree``; yields its URL once /readyz is 200."""
    env = SETTINGS | extra_env | {"PYTHONPATH": str(tree),
                                  "MEMORY_MODEL_REPOSITORY": str(ROOT / "model_repository")}
    with gateway_process(triton, work / "data", work, env, cwd=tree,
                         ready_s=READY_TIMEOUT_S) as url:
        yield url


def seed(http: httpx.Client, memories: int, dim: int,
         vectors_of: WordVectors | None) -> float:
    """``memories`` rows for the heavy user: word-made vectors, or random ones without
    ``vectors_of``."""
    started = time.perf_counter()
    words = random.Random(5)
    for start in range(0, memories, SEED_BATCH):
        count = min(SEED_BATCH, memories - start)
        texts = [memory_text(words) for _ in range(count)]
        vectors = (vectors_of(texts) if vectors_of is not None
                   else unit_vectors(count, dim, seed=start))
        items = [{"user_id": HEAVY_USER, "text": text, "embedding": v}
                 for text, v in zip(texts, vectors, strict=True)]
        http.post("/v1/memories/batch", json={"items": items}).raise_for_status()
    return time.perf_counter() - started


def timed_writes(http: httpx.Client, count: int, dim: int, tag: str) -> dict[str, list[float]]:
    """``count`` writes of each kind, interleaved, one at a time; seconds per write."""
    texts = sentences(count, seed=11)
    vectors = unit_vectors(count, dim, seed=12)
    samples: dict[str, list[float]] = {"text": [], "vector": []}
    for i in range(count):
        for kind, body in (
            ("text", {"user_id": f"writer-{tag}", "text": texts[i]}),
            ("vector", {"user_id": f"writer-{tag}-v", "text": texts[i], "embedding": vectors[i]}),
        ):
            started = time.perf_counter()
            response = http.post("/v1/memories", json=body)
            samples[kind].append(time.perf_counter() - started)
            response.raise_for_status()
    return samples


def search_load(url: str, clients: int, dim: int, mode: str, running: Event, stop: Event,
                out: Any) -> None:
    """In its own process: ``clients`` searchers of ``mode`` on the heavy user until
    ``stop``."""
    asyncio.run(_searching(url, clients, dim, mode, running, stop, out))


def _search_body(mode: str, i: int, vectors: list[list[float]],
                 words: random.Random) -> dict[str, Any]:
    if mode == "semantic":
        return {"user_id": HEAVY_USER, "embedding": vectors[i % len(vectors)], "limit": 10}
    # unique text (a counter suffix), so the query cache never answers
    return {"user_id": HEAVY_USER, "query": f"{query_text(words)} q{i}", "mode": mode,
            "limit": 10}


async def _searching(url: str, clients: int, dim: int, mode: str, running: Event, stop: Event,
                     out: Any) -> None:
    queries = unit_vectors(64, dim, seed=99)
    words = random.Random(mode)
    latencies: list[float] = []
    failures = 0
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def client(offset: int) -> None:
            nonlocal failures
            i = offset
            while not stop.is_set():
                body = _search_body(mode, i, queries, words)
                started = time.perf_counter()
                response = await http.post("/v1/memories/search", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200 or len(response.json()["results"]) != 10:
                    failures += 1
                running.set()
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        seconds = time.perf_counter() - started
    out.put({"searches": len(latencies), "failures": failures, "seconds": seconds,
             "latencies": latencies})


def probe_engine(tree: Path, rows: int, dim: int) -> dict:
    """``engine_probe.py`` run against the checkout ``tree`` (its ``gateway`` package)."""
    env = dict(os.environ) | {"PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("engine_probe.py")), "--rows", str(rows),
         "--dim", str(dim)], env=env, cwd=tree, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout))


def summary(samples: list[float]) -> dict[str, float]:
    return percentiles(samples) | {"max_ms": round(max(samples) * 1000, 3), "n": len(samples)}


def loaded_writes(name: str, url: str, http: httpx.Client, mode: str,
                  args: Any) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """The writes while ``args.clients`` searchers of ``mode`` run: (samples, search load)."""
    ctx = mp.get_context("spawn")
    running, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    load = ctx.Process(target=search_load,
                       args=(url, args.clients, args.dim, mode, running, stop, out))
    load.start()
    try:
        if not running.wait(READY_TIMEOUT_S):
            raise RuntimeError("the search load never answered")
        log(f"{name}: {args.writes} writes of each kind under {args.clients} {mode} "
            "searchers ...")
        loaded = timed_writes(http, args.writes, args.dim, f"loaded-{mode}")
    finally:
        stop.set()
    searched = out.get(timeout=READY_TIMEOUT_S)
    load.join(READY_TIMEOUT_S)
    return loaded, searched


def run_variant(name: str, tree: Path, triton: TritonServer, work: Path, args: Any) -> dict:
    log(f"{name}: index alone, from {tree} ({revision(tree)}) ...")
    engine = probe_engine(tree, args.memories, args.dim)
    with gateway_from(tree, triton, work / name, INDEXES[args.index] | args.gateway_env) as url, \
            httpx.Client(base_url=url, timeout=120) as http:
        log(f"{name}: gateway up; seeding {args.memories} vectors for {HEAVY_USER!r} ...")
        vectors_of = WordVectors(ROOT / SERVED_VERSION) if args.index == "shipped" else None
        seed_s = seed(http, args.memories, args.dim, vectors_of)
        log(f"{name}: waiting for the index's graph builds to finish ...")
        settle_s = wait_for_index(http)
        timed_writes(http, 10, args.dim, "warm")
        log(f"{name}: {args.writes} idle writes of each kind ...")
        idle = timed_writes(http, args.writes, args.dim, "idle")
        loaded = {mode: loaded_writes(name, url, http, mode, args) for mode in args.modes}
    result: dict[str, Any] = {"tree": str(tree), "revision": revision(tree),
                              "seed_seconds": round(seed_s, 1), "index_settle_seconds": settle_s,
                              "engine": engine}
    for kind in ("text", "vector"):
        result[f"{kind}_write"] = {"idle": summary(idle[kind])}
        for mode, (samples, _) in loaded.items():
            result[f"{kind}_write"][f"under_{mode}_search"] = summary(samples[kind])
            result[f"{kind}_write"][f"{mode}_p99_ratio"] = round(
                np.percentile(samples[kind], 99) / np.percentile(idle[kind], 99), 2)
    for mode, (_, searched) in loaded.items():
        result[f"{mode}_search_load"] = {
            "clients": args.clients, "searches": searched["searches"],
            "failures": searched["failures"],
            "searches_per_s": round(searched["searches"] / searched["seconds"], 1),
            **summary(searched["latencies"]),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.concurrency",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=100_000, help="rows in the heavy user")
    parser.add_argument("--clients", type=int, default=8, help="concurrent searchers")
    parser.add_argument("--writes", type=int, default=200, help="writes of each kind per phase")
    parser.add_argument("--dim", type=int, default=384, help="the embedder's dimension")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated search modes of the load, from {', '.join(MODES)}")
    parser.add_argument("--index", choices=sorted(INDEXES), default="shipped",
                        help="the shipped index with word-made vectors, or an exact one with "
                             "random vectors (every search a full scan)")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run a gateway from this checkout, first, for comparison")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the gateways (repeatable)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.gateway_env = dict(pair.split("=", 1) for pair in args.gateway_env)
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if unknown := set(args.modes) - set(MODES):
        parser.error(f"unknown modes {sorted(unknown)}; choose from {', '.join(MODES)}")

    report: dict[str, Any] = {
        "benchmark": "writes-under-search", "started_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "setup": {"memories": args.memories, "clients": args.clients, "writes": args.writes,
                  "dim": args.dim, "modes": args.modes, "index": args.index,
                  "gateway_env": SETTINGS | INDEXES[args.index] | args.gateway_env},
    }
    variants = ([("before", args.before.resolve())] if args.before else []) + [("after", ROOT)]
    with tempfile.TemporaryDirectory(prefix="bench-concurrency-") as tmp:
        work = Path(tmp)
        with triton_server(work) as triton:
            for name, tree in variants:
                report[name] = run_variant(name, tree, triton, work, args)
    write_report(args.out, "concurrency", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
