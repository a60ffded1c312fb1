"""The store layer on SQLite against PostgreSQL, side by side in one run (no HTTP, no Triton).

Both stores get the same memories (``--users`` users x ``--per-user`` memories of 12-30 words
from a shared vocabulary, batches of ``--batch`` as an ingest batch writes them: one
``insert_many`` per batch, its own transaction) and answer the same keyword searches, the
two backends taking turns per batch and per query so they see the same machine load; then
each reloads one user's vectors (the index's partition reload). Reports inserts per second,
search p50/p99 and the PostgreSQL/SQLite ratios.

    python -m loadtest.bench.store_backends --store-url postgresql://postgres@127.0.0.1:5432/postgres

``--store-url`` names a server whose user may create databases: a fresh one is made for the
run and dropped after. SQLite runs on a temporary file with ``synchronous=NORMAL`` (as the
benchmarks' gateways do). JSON to loadtest/results/store-backends-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from gateway.domain.model import Memory, SearchFilters, StoredMemory
from gateway.memory.ids import uuid7
from gateway.store.base import Store
from gateway.store.postgres.store import PostgresStore
from gateway.store.sqlite.store import SQLiteStore
from loadtest.bench.report_file import write_report
from loadtest.bench.retrieval import fresh_database
from loadtest.paths import RESULTS

DIM = 384
WHEN = "2024-01-01T00:00:00.000000Z"


def log(message: str) -> None:
    print(f"[store-backends] {message}", file=sys.stderr, flush=True)


def batches(users: int, per_user: int, batch: int, seed: int = 7) -> list[list[StoredMemory]]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(3000)]
    vectors = np.random.default_rng(seed).standard_normal((64, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    items = []
    for n in range(users * per_user):
        user = f"user-{n % users:05d}"
        text = " ".join(rng.choice(words) for _ in range(rng.randint(12, 30)))
        memory = Memory(id=uuid7(), user_id=user, text=text, agent_id=None, run_id=None,
                        metadata={"n": n}, priority=5, created_at=WHEN, updated_at=WHEN,
                        embedding_model="embedder:1", occurred_at=WHEN)
        items.append(StoredMemory(memory, vectors[n % 64]))
    return [items[i:i + batch] for i in range(0, len(items), batch)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


async def run(stores: dict[str, Store], plan: list[list[StoredMemory]], queries: int,
              users: int) -> dict[str, Any]:
    insert_s = {name: 0.0 for name in stores}
    for batch in plan:
        for name, store in stores.items():  # turns per batch: the same load for both
            started = time.perf_counter()
            await store.insert_many(batch)
            insert_s[name] += time.perf_counter() - started
    rng = random.Random(11)
    texts = [m.memory.text for batch in plan for m in batch]
    search_ms: dict[str, list[float]] = {name: [] for name in stores}
    hits: dict[str, list[list[str]]] = {name: [] for name in stores}
    for _ in range(queries):
        user = f"user-{rng.randrange(users):05d}"
        query = " ".join(rng.sample(rng.choice(texts).split(), 3))
        for name, store in stores.items():
            started = time.perf_counter()
            found = await store.keyword_search(user, query, 10, SearchFilters())
            search_ms[name].append((time.perf_counter() - started) * 1000)
            hits[name].append([memory_id for memory_id, _ in found])
    reload_ms: dict[str, float] = {}
    for name, store in stores.items():
        started = time.perf_counter()
        await store.user_vectors("user-00000")
        reload_ms[name] = (time.perf_counter() - started) * 1000
    memories = sum(len(b) for b in plan)
    out: dict[str, Any] = {name: {
        "inserts_per_s": round(memories / insert_s[name], 1),
        "search_p50_ms": round(percentile(search_ms[name], 50), 2),
        "search_p99_ms": round(percentile(search_ms[name], 99), 2),
        "search_mean_ms": round(statistics.fmean(search_ms[name]), 2),
        "user_reload_ms": round(reload_ms[name], 2),
    } for name in stores}
    names = list(stores)
    if len(names) == 2:
        a, b = names
        out["ratio_postgres_over_sqlite"] = {
            "insert_time": round(out[a]["inserts_per_s"] / out[b]["inserts_per_s"], 2),
            "search_p50": round(out[b]["search_p50_ms"] / out[a]["search_p50_ms"], 2),
            "search_p99": round(out[b]["search_p99_ms"] / out[a]["search_p99_ms"], 2),
        }
        out["same_top10"] = sum(x == y for x, y in zip(hits[a], hits[b], strict=True))
        out["queries"] = queries
    return out


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    plan = batches(args.users, args.per_user, args.batch)
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SQLiteStore(Path(folder) / "bench.sqlite3", synchronous="NORMAL")
        postgres = PostgresStore(url)
        stores: dict[str, Store] = {"sqlite": sqlite, "postgres": postgres}
        for store in stores.values():
            await store.open()
        try:
            return await run(stores, plan, args.queries, args.users)
        finally:
            for store in stores.values():
                await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.store_backends",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--store-url", default=os.environ.get("MEMORY_BENCH_POSTGRES"),
                        help="a PostgreSQL server (a fresh database is made there)")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--per-user", type=int, default=200)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.store_url:
        print("store-backends: skipped: no --store-url (or $MEMORY_BENCH_POSTGRES) naming a "
              "PostgreSQL server", file=sys.stderr)
        return 0
    log(f"{args.users} users x {args.per_user} memories, batches of {args.batch}, "
        f"{args.queries} keyword searches, each on SQLite and PostgreSQL in turns")
    with fresh_database(args.store_url, f"bench_store_backends_{os.getpid()}") as url:
        figures = asyncio.run(measure(url, args))
    report = {"benchmark": "store-backends", "settings": {
        k: v for k, v in vars(args).items() if k not in ("out", "store_url")},
        "load_average": os.getloadavg(), **figures}
    write_report(args.out, "store-backends", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
