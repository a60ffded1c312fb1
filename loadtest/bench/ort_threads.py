"""Single-text embedding latency in-process by ONNX Runtime intra-op thread count: the floor
under a text search, with no Triton and no HTTP.

The texts are the latency benchmark's own queries (``loadtest.bench.latency.text_bodies``,
14 to 30 tokens), so the figures compare with its text-search figures. Uses the exact runtime
file Triton runs (``<version>/embedding_runtime.py``), loaded the way the gateway's query
encoder loads it (``MEMORY_QUERY_ENCODER_THREADS`` picks its thread count).

    python -m loadtest.bench.ort_threads [--version-dir model_repository/embedder/1] [--count 1000]
    python -m loadtest.bench.ort_threads --threads 1 --batch 8 --count 100   # 8 texts per call
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from gateway.inference.local_encoder import load_runtime
from gateway.settings import ROOT
from gateway.versions.control import repository_versions
from loadtest.bench.latency import text_bodies


def measure(version_dir: Path, threads: int, count: int, *, spinning: bool = True,
            batch: int = 1) -> dict[str, float]:
    """Latency of one ``embed`` call of ``batch`` texts (``per_text_p50_ms``: divided)."""
    runtime = load_runtime(version_dir, threads, spinning=spinning)
    queries = [body["query"] for body in text_bodies("floor", count * batch, "ort")]
    for query in queries[:20]:
        runtime.embed([query])
    samples = []
    for start in range(0, len(queries), batch):
        started = time.perf_counter()
        runtime.embed(queries[start:start + batch])
        samples.append((time.perf_counter() - started) * 1000)
    ms = np.asarray(samples)
    tokens = [len(ids) for ids in runtime.tokenize(queries)]
    p50 = float(np.percentile(ms, 50))
    return {"threads": threads, "spinning": spinning, "batch": batch,
            "tokens_p50": int(np.median(tokens)), "p50_ms": round(p50, 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2),
            "per_text_p50_ms": round(p50 / batch, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.ort_threads",
                                     description=__doc__)
    repository = ROOT / "model_repository"
    versions = repository_versions(repository, "embedder")
    default = repository / "embedder" / versions[-1] if versions else None
    parser.add_argument("--version-dir", type=Path, default=default)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch", type=int, default=1, help="texts per embed call")
    args = parser.parse_args(argv)
    if args.version_dir is None:
        parser.error("no exported embedder version: run `make export`")
    results = []
    for threads in (int(t) for t in args.threads.split(",")):
        results.append(measure(args.version_dir, threads, args.count, batch=args.batch))
        if threads > 1:  # the gateway's query encoder turns spinning off
            results.append(measure(args.version_dir, threads, args.count, spinning=False,
                                   batch=args.batch))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
