"""``python -m loadtest.locust.triton_sweep``: client concurrency against Triton directly, no
gateway.

    python -m loadtest.locust.triton_sweep --concurrency 1,2,4,8,16 --seconds 5
    python -m loadtest.locust.triton_sweep --url 127.0.0.1:8001 --http-url http://127.0.0.1:8000

The Python stand-in for perf_analyzer's concurrency sweep where perf_analyzer is not
installed: N clients each keep one request in flight for ``--seconds``, sending the same
generated inputs as the perf_analyzer kit (``loadtest/locust/perf_analyzer/inputs.py``). Per level:
throughput, p50/p99 latency, and the server-side batch sizes Triton actually formed (from the
``/v2/models/<model>/stats`` batch counters, before minus after), which shows whether dynamic
batching engages. Without ``--url`` the bundled Triton is started on free loopback ports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput

from gateway.settings import ROOT
from loadtest.locust.perf_analyzer.inputs import entries_for, load_config, requests_from, wire_type
from loadtest.locust.seed import require_loopback
from loadtest.paths import RESULTS
from loadtest.stack import triton_server


def batch_histogram(http_url: str, model: str) -> dict[int, int]:
    """Executions per batch size since the server started."""
    with urllib.request.urlopen(f"{http_url}/v2/models/{model}/stats", timeout=10) as response:
        stats = json.load(response)["model_stats"][0]
    return {int(b["batch_size"]): int(b["compute_infer"]["count"])
            for b in stats.get("batch_stats", [])}


async def _level(url: str, model: str, requests: list[dict[str, np.ndarray]],
                 types: dict[str, str], concurrency: int, seconds: float) -> list[float]:
    client = grpcclient.InferenceServerClient(url)
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        i = offset
        while time.perf_counter() < stop_at:
            arrays = requests[i % len(requests)]
            inputs = []
            for name, array in arrays.items():
                item = InferInput(name, list(array.shape), types[name])
                item.set_data_from_numpy(array)
                inputs.append(item)
            started = time.perf_counter()
            await client.infer(model, inputs, client_timeout=60)
            latencies.append(time.perf_counter() - started)
            i += concurrency

    try:
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    finally:
        await client.close()
    return latencies


def sweep(url: str, http_url: str, model: str, levels: list[int], seconds: float,
          repository: Path) -> dict:
    config = load_config(repository, model)
    requests = requests_from({"data": entries_for(config, 200, seed=5)}, config)
    types = {spec.name: wire_type(spec.data_type) for spec in config.input}
    asyncio.run(_level(url, model, requests, types, 1, min(1.0, seconds)))  # warm-up
    rows = []
    for concurrency in levels:
        before = batch_histogram(http_url, model)
        latencies = asyncio.run(_level(url, model, requests, types, concurrency, seconds))
        after = batch_histogram(http_url, model)
        ms = np.asarray(latencies) * 1000
        histogram = {size: after[size] - before.get(size, 0) for size in sorted(after)
                     if after[size] - before.get(size, 0)}
        executions = sum(histogram.values())
        rows.append({"concurrency": concurrency, "requests": len(ms),
                     "throughput_per_s": round(len(ms) / seconds, 1),
                     "p50_ms": round(float(np.percentile(ms, 50)), 2),
                     "p99_ms": round(float(np.percentile(ms, 99)), 2),
                     "mean_server_batch": round(sum(s * c for s, c in histogram.items())
                                                / max(executions, 1), 2),
                     "server_batch_histogram": histogram})
    return {"model": model, "url": url, "seconds_per_level": seconds, "levels": rows}


def table(report: dict) -> str:
    lines = [f"{report['model']} @ {report['url']}",
             f"{'conc':>5} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'batch':>6}  histogram"]
    for r in report["levels"]:
        lines.append(f"{r['concurrency']:>5} {r['throughput_per_s']:>8} {r['p50_ms']:>8} "
                     f"{r['p99_ms']:>8} {r['mean_server_batch']:>6}  "
                     f"{r['server_batch_histogram']}")
    return "\n".join(lines)


@contextmanager
def _target(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    if args.url:
        require_loopback("http://" + args.url)
        yield args.url, require_loopback(args.http_url)
        return
    with tempfile.TemporaryDirectory(prefix="sweep-") as tmp, triton_server(Path(tmp)) as t:
        yield t.grpc_url, t.http_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.locust.triton_sweep",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedder")
    parser.add_argument("--concurrency", default="1,2,4,8,16")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--url", help="Triton gRPC host:port (loopback); default: start one")
    parser.add_argument("--http-url", default="http://127.0.0.1:8000")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    with _target(args) as (url, http_url):
        report = sweep(url, http_url, args.model, levels, args.seconds, args.repository)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"triton-sweep-{args.model}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
