"""``make bench-keyword-scale``: keyword and hybrid search latency as one user grows.

Measured as a new user would: through HTTP, shipped defaults, text queries. Users of
``--sizes`` memories (1k, 20k, 100k) get short texts (4 to 8 distinct words) drawn from a
23-word vocabulary, seeded through ``/v1/memories/batch`` with client-supplied vectors made
from the model's embeddings of their words (``common_words.WordVectors``: no Triton time, and
structured as text embeddings are). The index settles (its graph builds finish) before any
measurement. Each search is five words of that vocabulary, so every query term is common:
the case where FTS5's ``bm25()`` ranks most of the user's postings. Queries are unique (a
counter suffix, which adds a term with no postings), so the query cache never answers them.

Per user and mode (``keyword``, ``hybrid``): p50/p95/p99 of ``--searches`` searches, and the
ratios of each size's hybrid p50 to the smallest user's. ``--before DIR`` runs a gateway from
another checkout first, on the same store (it is migrated forward when the second gateway
opens it), so before and after sit side by side in one JSON under ``loadtest/results/``.
Last, ``keyword_levels`` times both keyword paths query by query on a store of the same
users (the same load for both, and their answers compared).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.settings import ROOT
from loadtest.bench import keyword_levels
from loadtest.bench.common_words import (
    SERVED_VERSION,
    VOCABULARY,
    WordVectors,
    memory_text,
    query_text,
)
from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.paths import RESULTS
from loadtest.stack import gateway_process, triton_server, wait_for_index

SEED_BATCH = 1000
READY_TIMEOUT_S = 300
QUIET = {"MEMORY_ADMISSION_ENABLED": "false", "MEMORY_DEADLINE_SEARCH_MS": "0",
         "MEMORY_DEADLINE_INGEST_MS": "0"}  # measure the search alone: no shedding


def log(message: str) -> None:
    print(f"[bench-keyword-scale] {message}", file=sys.stderr, flush=True)


def seed(http: httpx.Client, user: str, count: int, vectors_of: WordVectors) -> float:
    rng = random.Random(user)
    started = time.perf_counter()
    for start in range(0, count, SEED_BATCH):
        texts = [memory_text(rng) for _ in range(min(SEED_BATCH, count - start))]
        items = [{"user_id": user, "text": text, "embedding": vector}
                 for text, vector in zip(texts, vectors_of(texts), strict=True)]
        http.post("/v1/memories/batch", json={"items": items, "dedup": False}).raise_for_status()
    return time.perf_counter() - started


def timed(http: httpx.Client, user: str, mode: str, count: int, tag: str) -> list[float]:
    rng = random.Random(f"{user}-{mode}-{tag}")
    samples = []
    for i in range(count):
        body = {"user_id": user, "query": f"{query_text(rng)} {tag}{i}", "limit": 10,
                "mode": mode}
        started = time.perf_counter()
        response = http.post("/v1/memories/search", json=body)
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"search failed: {response.status_code} {response.text[:200]}")
    return samples


def revision(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or "(not a git checkout)"


def dimension(http: httpx.Client) -> int:
    """The active embedder's dimension: a 1-d probe is refused with the expected one."""
    probe = http.post("/v1/memories/search", json={"user_id": "nobody", "embedding": [1.0]})
    words = probe.text.split("expected ")[-1].split()
    if not words or not words[0].isdigit():
        raise RuntimeError(f"cannot learn the embedder's dimension: {probe.text[:200]}")
    return int(words[0])


def measure(url: str, users: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=120) as http:
        for user, size in users.items():
            timed(http, user, "hybrid", 20, "warm")  # connections, caches, page cache
            timed(http, user, "keyword", 20, "warm")
            out[user] = {"memories": size} | {
                mode: percentiles(timed(http, user, mode, args.searches, mode[:2]))
                for mode in ("keyword", "hybrid")}
            log(f"  {user}: {out[user]}")
    smallest = min(users, key=users.__getitem__)
    for user in users:
        for mode in ("keyword", "hybrid"):
            out[user][mode]["p50_over_smallest"] = round(
                out[user][mode]["p50_ms"] / out[smallest][mode]["p50_ms"], 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.keyword_scale",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,20000,100000",
                        help="comma-separated memories per user")
    parser.add_argument("--searches", type=int, default=200, help="searches per user and mode")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run a gateway from this checkout, first, on the same store")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    users = {f"u{int(size) // 1000}k": int(size) for size in args.sizes.split(",")}
    report: dict[str, Any] = {
        "benchmark": "keyword-scale", "started_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average_at_start": os.getloadavg()},
        "setup": {"users": users, "searches": args.searches, "vocabulary": len(VOCABULARY),
                  "limit": 10, "gateway_env": QUIET},
    }
    variants = ([("before", args.before.resolve())] if args.before else []) + [("after", ROOT)]
    with tempfile.TemporaryDirectory(prefix="bench-keyword-scale-") as tmp:
        work = Path(tmp)
        with triton_server(work) as triton:
            for index, (name, tree) in enumerate(variants):
                env = QUIET | {"PYTHONPATH": str(tree),
                               "MEMORY_MODEL_REPOSITORY": str(ROOT / "model_repository")}
                with gateway_process(triton, work / "data", work / name, env, cwd=tree,
                                     ready_s=READY_TIMEOUT_S) as url:
                    if index == 0:
                        with httpx.Client(base_url=url, timeout=300) as http:
                            vectors_of = WordVectors(ROOT / SERVED_VERSION)
                            if vectors_of.dim != dimension(http):
                                raise RuntimeError("the served embedder is not version 1's")
                            for user, size in users.items():
                                log(f"seeding {user} ({size} memories) ...")
                                report.setdefault("seed_seconds", {})[user] = round(
                                    seed(http, user, size, vectors_of), 1)
                    log(f"{name}: waiting for the index's graph builds to finish ...")
                    with httpx.Client(base_url=url, timeout=60) as http:
                        settled = wait_for_index(http)
                    log(f"{name}: {tree} ({revision(tree)}) ...")
                    report[name] = {"tree": str(tree), "revision": revision(tree),
                                    "index_settle_seconds": settled,
                                    "load_average": os.getloadavg(),
                                    "users": measure(url, users, args)}
    log("the store, levels against FTS5's ranking query by query ...")
    report["store_side_by_side"] = keyword_levels.run(list(users.values()), args.searches)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    write_report(args.out, "keyword-scale", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
