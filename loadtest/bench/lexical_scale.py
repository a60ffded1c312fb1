"""Keyword search for one user: a store of many users against a store of that user alone.

The lexical index folds each term with a hash of its user, so a user's search should read only
that user's postings however many users share the store. This measures it on the store layer
(no HTTP, no Triton): the same user's memories and queries, in a store of ``--users`` users
with ``--per-user`` memories each (common words included) and in a store holding only them.

    python -m loadtest.bench.lexical_scale --users 10000 --per-user 100

Writes JSON to loadtest/results/lexical_scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from gateway.domain.model import Memory, SearchFilters, StoredMemory
from gateway.memory.ids import uuid7
from gateway.store.sqlite.store import SQLiteStore
from loadtest.paths import RESULTS

COMMON = ["like", "really", "good", "time", "going", "think", "know", "people", "work", "today",
          "great", "feel", "thing", "yesterday", "family", "friends", "love", "home", "week"]
BATCH = 5_000


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(4, 9))) for _ in range(size)]


def _text(rng: random.Random, vocab: list[str], cumulative: list[float]) -> str:
    words = rng.choices(COMMON, k=5) + rng.choices(vocab, cum_weights=cumulative, k=10)
    rng.shuffle(words)
    return " ".join(words)


def _rows(user: str, texts: list[str], at: str) -> list[StoredMemory]:
    vector = np.ones(4, dtype=np.float32) / 2
    return [StoredMemory(Memory(uuid7(), user, text, None, None, {}, 5, at, at, "bench:1", at),
                         vector) for text in texts]


async def _fill(store: SQLiteStore, users: dict[str, list[str]]) -> float:
    at = "2024-01-01T00:00:00.000000Z"
    start = time.perf_counter()
    pending: list[StoredMemory] = []
    for user, texts in users.items():
        pending += _rows(user, texts, at)
        if len(pending) >= BATCH:
            await store.insert_many(pending)
            pending = []
    if pending:
        await store.insert_many(pending)
    return time.perf_counter() - start


async def _timed(store: SQLiteStore, user: str, queries: list[str], k: int) -> dict[str, float]:
    for query in queries[:20]:  # warm the page cache
        await store.keyword_search(user, query, k, SearchFilters())
    times = []
    for query in queries:
        start = time.perf_counter()
        await store.keyword_search(user, query, k, SearchFilters())
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[int(len(times) * 0.99) - 1]}


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    vocab = _vocabulary(rng, args.vocabulary)
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocab))))  # Zipf
    users = {f"user-{u}": [_text(rng, vocab, cumulative) for _ in range(args.per_user)]
             for u in range(args.users)}
    target = "user-0"
    words = " ".join(users[target]).split()
    queries = [" ".join(rng.sample(words, 4)) for _ in range(args.queries)]
    out: dict[str, object] = {"users": args.users, "per_user": args.per_user,
                              "memories": args.users * args.per_user, "k": args.k,
                              "queries": args.queries}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        for name, population in (("alone", {target: users[target]}), ("shared", users)):
            store = SQLiteStore(Path(tmp) / f"{name}.db", synchronous="NORMAL")
            await store.open()
            seconds = await _fill(store, population)
            count = sum(len(texts) for texts in population.values())
            timing = await _timed(store, target, queries, args.k)
            out[name] = {**timing, "memories": count, "ingest_per_s": count / seconds,
                         "file_mb": (Path(tmp) / f"{name}.db").stat().st_size / 1e6}
            await store.close()
            print(name, out[name], flush=True)
    alone, shared = out["alone"], out["shared"]
    assert isinstance(alone, dict) and isinstance(shared, dict)
    out["p50_ratio"] = shared["p50_ms"] / alone["p50_ms"]
    out["p99_ratio"] = shared["p99_ms"] / alone["p99_ms"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--per-user", type=int, default=100)
    parser.add_argument("--vocabulary", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tmp", default=None, help="where the two stores are built")
    parser.add_argument("--out", type=Path, default=RESULTS / "lexical_scale.json")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("p50_ratio", "p99_ratio")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
