"""``make bench-capacity``: the per-memory figures behind the capacity model (docs/scaling.md).

For each store (SQLite always; PostgreSQL with ``--store-url``), the same memories (short
sentences, 384-d float32 vectors, ``--users`` users of ``--per-user`` memories and one large
user of ``--large`` memories) are written through the store protocol, then measured:

- bytes on disk per memory (the SQLite file after a checkpoint; ``pg_database_size``);
- write rate through ``insert_many`` in batches of 1,000;
- a partition reload: ``user_vectors`` of the large user (what the RAM tier does when a user
  comes back after eviction, and what a replica does on a user's first request), p50/p99;
- RAM per memory in the vector index: the exact partitions (matrix and Python bookkeeping,
  measured with tracemalloc), and the HNSW graph on top for a partition past the ANN threshold.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gateway.domain.model import Memory, StoredMemory
from gateway.index.hnsw import HnswBuilder
from gateway.index.partitioned import AnnPolicy, PartitionedIndex
from gateway.memory.clock import utc_now
from gateway.memory.ids import uuid7
from gateway.store.base import Store
from gateway.store.sqlite.store import SQLiteStore
from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.corpus import sentences
from loadtest.paths import RESULTS

DIM = 384
BATCH = 1000


def log(message: str) -> None:
    print(f"[bench-capacity] {message}", file=sys.stderr, flush=True)


def unit_vectors(count: int, seed: int) -> np.ndarray:
    block = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return block / np.linalg.norm(block, axis=1, keepdims=True)


def user_memories(user: str, count: int, seed: int) -> list[StoredMemory]:
    now = utc_now()
    vectors = unit_vectors(count, seed)
    return [StoredMemory(Memory(
        id=uuid7(), user_id=user, text=text, agent_id=None, run_id=None, metadata={},
        priority=5, created_at=now, updated_at=now, embedding_model="embedder:1",
        occurred_at=now), vectors[i]) for i, text in enumerate(sentences(count, seed))]


def population(users: int, per_user: int, large: int) -> dict[str, int]:
    sizes = {f"user-{i:05d}": per_user for i in range(users)}
    sizes["large-user"] = large
    return sizes


async def fill(store: Store, sizes: dict[str, int]) -> float:
    """Write every user's memories in batches; the seconds it took."""
    started = time.perf_counter()
    for n, (user, count) in enumerate(sizes.items()):
        rows = user_memories(user, count, seed=n)
        for start in range(0, count, BATCH):
            await store.insert_many(rows[start:start + BATCH])
    return time.perf_counter() - started


async def reloads(store: Store, user: str, repeats: int) -> dict[str, Any]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        ids, vectors = await store.user_vectors(user)
        samples.append(time.perf_counter() - started)
    return {"memories": len(ids), "vector_bytes": int(vectors.nbytes)} | percentiles(samples)


async def measure_store(name: str, store: Store, size_of: Any, sizes: dict[str, int],
                        repeats: int) -> dict[str, Any]:
    """Write, time reloads, and size the store; ``size_of`` runs once it is closed (SQLite:
    the file after its closing checkpoint) or, returning None then, while it is open."""
    await store.open()
    try:
        total = sum(sizes.values())
        log(f"{name}: writing {total:,} memories of {len(sizes):,} users")
        seconds = await fill(store, sizes)
        report = {
            "memories": total, "write_s": round(seconds, 2),
            "writes_per_s": round(total / seconds, 1),
            "reload_large_user": await reloads(store, "large-user", repeats),
        }
        on_disk = await size_of(open_store=store)
    finally:
        await store.close()
    on_disk = on_disk or await size_of(open_store=None)
    report |= {"bytes_on_disk": on_disk, "bytes_per_memory": round(on_disk / total, 1)}
    log(f"{name}: {report['bytes_per_memory']} B/memory, reload "
        f"{report['reload_large_user']['p50_ms']} ms p50")
    return report


def sqlite_size(path: Path) -> Any:
    async def size(open_store: Store | None) -> int | None:
        if open_store is not None:
            return None  # measured after the close's checkpoint folds the WAL in
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    return size


def postgres_store(url: str) -> tuple[Store, Any]:
    from gateway.store.postgres.store import PostgresStore  # only with --store-url

    store = PostgresStore(url)

    async def size(open_store: Store | None) -> int | None:
        if open_store is not None:
            return None
        import psycopg

        with psycopg.connect(url) as conn:  # tables, indexes, TOAST: the whole database
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0
    return store, size


def index_ram(sizes: dict[str, int], hnsw_rows: int) -> dict[str, Any]:
    """Bytes per vector held by exact partitions (all users), and by an HNSW graph."""
    vectors = {user: unit_vectors(count, seed=n) for n, (user, count) in enumerate(sizes.items())}
    ids = {user: [uuid7() for _ in range(len(v))] for user, v in vectors.items()}
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    index = PartitionedIndex(None)
    for user in sizes:
        index.load(user, ids[user], vectors[user])
    exact = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    total = sum(sizes.values())
    graph_index = PartitionedIndex(HnswBuilder(), AnnPolicy(threshold=1000), background=False)
    graph_index.load("big", [uuid7() for _ in range(hnsw_rows)], unit_vectors(hnsw_rows, 99))
    stats = graph_index.stats()
    matrix = hnsw_rows * DIM * 4
    return {
        "exact_bytes_per_vector": round(exact / total, 1),
        "raw_vector_bytes": DIM * 4,
        "hnsw_rows": hnsw_rows, "hnsw_graphs": stats.graphs,
        "hnsw_graph_bytes_per_vector": round(max(0, stats.bytes - matrix) / hnsw_rows, 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sizes = population(args.users, args.per_user, args.large)
    report: dict[str, Any] = {
        "benchmark": "capacity", "at": datetime.now(UTC).isoformat(),
        "machine": platform.platform(), "dim": DIM,
        "users": args.users, "per_user": args.per_user, "large_user": args.large,
        "stores": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memories.sqlite3"
        report["stores"]["sqlite"] = await measure_store(
            "sqlite", SQLiteStore(path), sqlite_size(path), sizes, args.repeats)
    if args.postgres and not args.store_url:
        from loadtest.postgres import throwaway_database

        with throwaway_database() as url:
            await measure_postgres(report, url, sizes, args.repeats)
    elif args.store_url:
        await measure_postgres(report, args.store_url, sizes, args.repeats)
    log("index RAM per vector")
    report["index"] = index_ram(sizes, args.hnsw_rows)
    return report


async def measure_postgres(report: dict[str, Any], url: str, sizes: dict[str, int],
                           repeats: int) -> None:
    store, size = postgres_store(url)
    report["stores"]["postgres"] = await measure_store("postgres", store, size, sizes, repeats)
    sqlite_p50 = report["stores"]["sqlite"]["reload_large_user"]["p50_ms"]
    postgres_p50 = report["stores"]["postgres"]["reload_large_user"]["p50_ms"]
    report["reload_postgres_over_sqlite"] = round(postgres_p50 / sqlite_p50, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--per-user", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10_000, help="memories of the large user")
    parser.add_argument("--repeats", type=int, default=20, help="partition reloads timed")
    parser.add_argument("--hnsw-rows", type=int, default=20_000)
    parser.add_argument("--store-url", default=None,
                        help="also measure this PostgreSQL database (it gets written to)")
    parser.add_argument("--postgres", action="store_true",
                        help="also measure PostgreSQL on a throwaway local server")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args))
    write_report(args.out, "capacity", report, log)


if __name__ == "__main__":
    main()
