"""``python -m loadtest.bench.infinity_engines``: infinity-emb's ONNX and torch engines, side by
side in one run, straight to the server (no gateway).

Both serve all-MiniLM-L6-v2 on the same machine at the same time (``loadtest.infinity``: the
ONNX engine on the O2-optimised export, the torch engine on the sentence-transformers folder),
and get the same requests in alternating blocks: single query texts one after another (what a
search sends) and batches of ``--batch`` texts, two requests in flight (what a batch ingest
through a remote version with ``batch_size = 32`` sends). Requests ask for base64 vectors, as
the gateway does.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.corpus import sentences
from loadtest.infinity import ENGINES, SERVED_NAME, InfinityServer
from loadtest.paths import RESULTS


def _embed(http: httpx.Client, texts: list[str]) -> None:
    http.post("/embeddings", json={"model": SERVED_NAME, "input": texts,
                                   "encoding_format": "base64"}).raise_for_status()


def singles(http: httpx.Client, queries: list[str]) -> list[float]:
    samples = []
    for query in queries:
        began = time.perf_counter()
        _embed(http, [query])
        samples.append(time.perf_counter() - began)
    return samples


def batches(http: httpx.Client, texts: list[str], batch: int, pool: ThreadPoolExecutor) -> float:
    """Seconds to embed ``texts`` in requests of ``batch``, two in flight."""
    began = time.perf_counter()
    parts = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    list(pool.map(lambda part: _embed(http, part), parts))
    return time.perf_counter() - began


def measure(urls: dict[str, str], rounds: int, per_round: int, batch: int,
            searches: int) -> dict[str, Any]:
    clients = {engine: httpx.Client(base_url=url, timeout=120) for engine, url in urls.items()}
    texts = sentences(rounds * per_round, seed=21)
    queries = [f"what does {q.split(' (#')[0].lower()}?" for q in sentences(
        rounds * searches + 8, seed=42)]
    single_s: dict[str, list[float]] = {engine: [] for engine in urls}
    batch_s = dict.fromkeys(urls, 0.0)
    with ThreadPoolExecutor(2) as pool:
        for http in clients.values():  # warm up
            singles(http, queries[-8:])
            batches(http, texts[:batch * 2], batch, pool)
        for r in range(rounds):
            order = list(urls) if r % 2 == 0 else list(urls)[::-1]
            for engine in order:
                single_s[engine] += singles(clients[engine],
                                            queries[r * searches:(r + 1) * searches])
                batch_s[engine] += batches(clients[engine],
                                           texts[r * per_round:(r + 1) * per_round], batch, pool)
    for http in clients.values():
        http.close()
    report: dict[str, Any] = {
        engine: {"single": percentiles(single_s[engine]) | {"n": len(single_s[engine])},
                 "batch_texts_per_s": round(len(texts) / batch_s[engine], 1)}
        for engine in urls}
    report["single_p50_ratio_onnx_to_torch"] = round(
        report["optimum"]["single"]["p50_ms"] / report["torch"]["single"]["p50_ms"], 3)
    report["batch_rate_ratio_onnx_to_torch"] = round(
        report["optimum"]["batch_texts_per_s"] / report["torch"]["batch_texts_per_s"], 3)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.infinity_engines",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="alternating blocks per engine")
    parser.add_argument("--texts", type=int, default=256, help="texts per batch block")
    parser.add_argument("--batch", type=int, default=32, help="texts per batch request")
    parser.add_argument("--searches", type=int, default=50, help="single texts per block")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch threads of the torch engine")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"benchmark": "infinity-engines", "cpus": os.cpu_count(),
                              "load_average_start": os.getloadavg()[0],
                              "args": {k: v for k, v in vars(args).items() if k != "out"}}
    with tempfile.TemporaryDirectory() as scratch_dir:
        logs = Path(scratch_dir)
        with InfinityServer(logs, engine="optimum") as onnx, \
                InfinityServer(logs, engine="torch", threads=args.torch_threads) as torch:
            report |= measure({"optimum": onnx.base_url, "torch": torch.base_url},
                              args.rounds, args.texts, args.batch, args.searches)
    report["load_average_end"] = os.getloadavg()[0]
    write_report(args.out, "bench-infinity-engines", report, print)
    for engine in ENGINES:
        print(f"{engine}: single p50 {report[engine]['single']['p50_ms']} ms, batches "
              f"{report[engine]['batch_texts_per_s']} texts/s")
    print(f"ONNX/torch: single p50 x{report['single_p50_ratio_onnx_to_torch']}, batch rate "
          f"x{report['batch_rate_ratio_onnx_to_torch']}; load average "
          f"{report['load_average_start']:.2f} -> {report['load_average_end']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
