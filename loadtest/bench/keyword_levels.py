"""Keyword search by levels against FTS5's ranking, on the store, query by query.

The HTTP figures of ``keyword_scale`` run the two gateways one after the other, so a shared
machine's load can differ between them. Here both paths answer each query in turn on the same
connection (``keyword.keyword_search``, by levels where it can; ``keyword.fts5_search``,
``bm25()`` over every match), so they see the same load; every answer pair is compared too.
Each search's wall time and its thread's CPU time are kept: on a shared machine the CPU time
says what a search costs, the wall time what a caller waits.
Users of ``--sizes`` memories of the ``common_words`` vocabulary, k = 40 (the hybrid pool of
a ``limit`` 10 search).

    python -m loadtest.bench.keyword_levels --sizes 1000,20000,100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.domain.model import SearchFilters
from gateway.store.sqlite import functions, keyword
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.types import CONTEXT_WEIGHT
from loadtest import population
from loadtest.bench import common_words
from loadtest.bench.lexical_scale import _fill
from loadtest.bench.timing import percentiles
from loadtest.paths import RESULTS

K = 40


def _timed(conn: sqlite3.Connection, key: Any, user: str, queries: list[str]) -> dict[str, Any]:
    options = {"date_weight": 1.0, "archived": False, "context_weight": CONTEXT_WEIGHT,
               "key": key}
    wall: dict[str, list[float]] = {"levels": [], "fts5": []}
    cpu: dict[str, list[float]] = {"levels": [], "fts5": []}
    differ = 0
    for query in queries:
        answers = []
        for name, search in (("levels", keyword.keyword_search), ("fts5", keyword.fts5_search)):
            started, started_cpu = time.perf_counter(), time.thread_time()
            answers.append(search(conn, user, query, K, SearchFilters(), **options))
            cpu[name].append(time.thread_time() - started_cpu)
            wall[name].append(time.perf_counter() - started)
        scores = [[round(score, 9) for _, score in answer] for answer in answers]
        differ += scores[0] != scores[1]
    out: dict[str, Any] = {"answers_that_differ": differ}
    # CPU time of the searching thread (SQLite runs on it too): what a search costs, whatever
    # else shares the cores; wall time is what a caller waits on this machine now.
    for clock, samples in (("wall", wall), ("cpu", cpu)):
        levels, fts5 = percentiles(samples["levels"]), percentiles(samples["fts5"])
        out[clock] = {"levels": levels, "fts5": fts5,
                      "p50_speedup": round(fts5["p50_ms"] / levels["p50_ms"], 1),
                      "p99_speedup": round(fts5["p99_ms"] / levels["p99_ms"], 1)}
    return out


# ``vocabulary``: short texts and five-word queries of 23 common words (the case);
# ``population``: the latency benchmark's templated memories and its 7-13-term questions.
CORPORA = {"vocabulary": common_words, "population": population}


async def _store(path: Path, users: dict[str, int], corpus: Any) -> None:
    store = SQLiteStore(path, synchronous="NORMAL")
    await store.open()
    await _fill(store, {user: [corpus.memory_text(random.Random(f"{user}-{i}"))
                               for i in range(size)]
                        for user, size in users.items()})
    await store.close()


def run(sizes: list[int], searches: int, tmp: str | None = None,
        corpus: str = "vocabulary") -> dict[str, Any]:
    users = {f"u{size // 1000}k": size for size in sizes}
    out: dict[str, Any] = {"k": K, "searches": searches, "corpus": corpus,
                           "load_average_at_start": os.getloadavg()}
    texts = CORPORA[corpus]
    with tempfile.TemporaryDirectory(dir=tmp) as folder:
        path = Path(folder) / "levels.db"
        asyncio.run(_store(path, users, texts))
        conn = sqlite3.connect(path)
        key = functions.install(conn)
        for user, size in users.items():
            rng = random.Random(user)
            queries = [f"{texts.query_text(rng)} q{i}" for i in range(searches)]
            _timed(conn, key, user, queries[:20])  # page cache
            out[user] = {"memories": size} | _timed(conn, key, user, queries)
            print(user, json.dumps(out[user]), flush=True)
        conn.close()
    out["load_average_at_end"] = os.getloadavg()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,20000,100000")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="vocabulary")
    parser.add_argument("--out", type=Path, default=RESULTS / "keyword_levels.json")
    args = parser.parse_args(argv)
    result = run([int(size) for size in args.sizes.split(",")], args.searches,
                 corpus=args.corpus)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
