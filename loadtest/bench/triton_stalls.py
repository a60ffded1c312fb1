"""Sequential single-text embed calls straight to Triton, per model: the batcher's stalls.

Triton 2.51's dynamic batcher now and then keeps a lone request queued for ~500 ms (its idle
wait); the batcher-free twin ``embedder_query`` does not. This sends ``--count`` one-text
requests, one after another, to each model over gRPC and counts the slow ones, with the
server-side queue time from Triton's own statistics.

    python -m loadtest.bench.triton_stalls [--count 1000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient

from loadtest.stack import triton_server

MODELS = ("embedder", "embedder_query")
SLOW_MS = 100.0


def _queue_ms(http_url: str, model: str) -> tuple[int, float]:
    with urllib.request.urlopen(f"{http_url}/v2/models/{model}/stats", timeout=5) as response:
        stats = json.load(response)["model_stats"][0]["inference_stats"]["queue"]
    return int(stats["count"]), float(stats["ns"]) / 1e6


def measure(grpc_url: str, http_url: str, model: str, count: int) -> dict:
    samples = []
    before = _queue_ms(http_url, model)
    with grpcclient.InferenceServerClient(grpc_url) as client:
        for i in range(count):
            text = np.array([[f"what does user {i} like for breakfast".encode()]], np.object_)
            tensor = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
            tensor.set_data_from_numpy(text)
            started = time.perf_counter()
            client.infer(model, [tensor])
            samples.append((time.perf_counter() - started) * 1000)
    after = _queue_ms(http_url, model)
    ms = np.asarray(samples)
    queued = (after[1] - before[1]) / max(after[0] - before[0], 1)
    return {"model": model, "count": count, "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2), "max_ms": round(float(ms.max()), 1),
            f"over_{SLOW_MS:.0f}ms": int((ms > SLOW_MS).sum()),
            "mean_queue_ms": round(queued, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.triton_stalls",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="triton-stalls-") as scratch, \
            triton_server(Path(scratch)) as server:
        results = [measure(server.grpc_url, server.http_url, m, args.count) for m in MODELS]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
