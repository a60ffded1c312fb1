"""Index-only half of ``bench.concurrency``: one user's writes while another user is searched.

No HTTP, no Triton, no store: a ``PartitionedIndex`` (exact) holds ``--rows`` vectors for
``heavy``; one thread searches it back to back in batches of ``--batch`` queries (what the
gateway's micro-batcher sends under 8 clients), while the main thread adds single rows to
another user, paced ``--gap-ms`` apart. Prints JSON: add latency idle and under search.

Self-contained on purpose (numpy and ``gateway.index`` only): ``bench.concurrency`` runs it as
a script with ``PYTHONPATH`` set to an older checkout to get the "before" figures.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import numpy as np

from gateway.index.partitioned import PartitionedIndex


def _ms(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "max_ms": round(float(ms.max()), 3), "n": len(samples)}


def _adds(index: PartitionedIndex, vectors: np.ndarray, tag: str, gap_s: float) -> list[float]:
    samples = []
    for i, vector in enumerate(vectors):
        started = time.perf_counter()
        index.add(f"writer-{tag}", [f"{tag}{i}"], vector[None, :])
        samples.append(time.perf_counter() - started)
        time.sleep(gap_s)  # pacing: spread the writes over many search batches
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    rows = rng.standard_normal((args.rows + args.batch + 2 * args.writes, args.dim))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    heavy, queries = rows[: args.rows], rows[args.rows : args.rows + args.batch]
    writes = rows[args.rows + args.batch :]
    index = PartitionedIndex()
    index.add("heavy", [f"h{i}" for i in range(args.rows)], heavy)

    idle = _adds(index, writes[: args.writes], "idle", args.gap_ms / 1000)
    stop, searched = threading.Event(), []

    def searching() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            index.search_batch("heavy", queries, 10)
            searched.append(time.perf_counter() - started)

    thread = threading.Thread(target=searching, name="searcher")
    thread.start()
    try:
        loaded = _adds(index, writes[args.writes :], "loaded", args.gap_ms / 1000)
    finally:
        stop.set()
        thread.join()
    print(json.dumps({
        "rows": args.rows, "dim": args.dim, "queries_per_search": args.batch,
        "add_idle": _ms(idle), "add_under_search": _ms(loaded),
        "p99_ratio": round(float(np.percentile(loaded, 99) / np.percentile(idle, 99)), 2),
        "search": _ms(searched),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
