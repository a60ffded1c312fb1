"""Single-text embedding latency in-process by ONNX Runtime intra-op thread count.

Why the query twin runs one thread: a lone query gains little from a second thread, and the
second thread's spinning costs the tail (and the gateway's CPU) on a small machine. Uses the
exact runtime file Triton runs (``<version>/embedding_runtime.py``).

    python -m loadtest.ort_threads [--version-dir model_repository/embedder/1] [--count 1000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

from gateway.inference.control import repository_versions
from gateway.settings import ROOT


def load_runtime(version_dir: Path, threads: int):  # noqa: ANN201 - the version's own class
    spec = importlib.util.spec_from_file_location("embedding_runtime",
                                                  version_dir / "embedding_runtime.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EmbeddingRuntime(version_dir, intra_op_threads=threads)


def measure(version_dir: Path, threads: int, count: int) -> dict[str, float]:
    runtime = load_runtime(version_dir, threads)
    for i in range(20):
        runtime.embed([f"warm-up text {i}"])
    samples = []
    for i in range(count):
        started = time.perf_counter()
        runtime.embed([f"what does the user {i} like to eat for breakfast"])
        samples.append((time.perf_counter() - started) * 1000)
    ms = np.asarray(samples)
    return {"threads": threads, "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.ort_threads", description=__doc__)
    repository = ROOT / "model_repository"
    versions = repository_versions(repository, "embedder")
    default = repository / "embedder" / versions[-1] if versions else None
    parser.add_argument("--version-dir", type=Path, default=default)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--threads", default="1,2")
    args = parser.parse_args(argv)
    if args.version_dir is None:
        parser.error("no exported embedder version: run `make export`")
    results = [measure(args.version_dir, int(t), args.count) for t in args.threads.split(",")]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
