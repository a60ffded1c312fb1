"""``make bench``: embedding throughput, ingest rate and search latency, as JSON.

(a) Triton embedder vs sentence-transformers in-process on the same sentences, same run,
    with the throughput ratio and the minimum cosine between their vectors;
(b) gateway ``/v1/memories/batch`` ingest rate;
(c) single-client search latency percentiles over one user's memories;
(d) a live embedder swap (fp32 -> int8 exported on the spot): re-embed rate and search latency
    before and during the migration;
(e) with ``--reranker DIR`` only: reranker pairs/s through Triton vs PyTorch in-process, and
    search latency with and without rerank (see ``loadtest.bench.rerank``).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from gateway.inference.client import EmbedderClient
from gateway.metrics import Metrics
from gateway.triton import TritonServer
from gateway.versions.control import repository_versions
from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.corpus import sentences
from loadtest.paths import RESULTS
from loadtest.stack import free_port, gateway_process, triton_server


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


async def _triton_embed(triton: TritonServer, texts: list[str], batch: int,
                        concurrency: int) -> tuple[np.ndarray, float]:
    client = EmbedderClient(triton.grpc_url, "embedder", timeout_s=60, retry_after_s=1,
                            metrics=Metrics())
    try:
        version = repository_versions(triton.model_repository, "embedder")[-1]
        await client.embed(texts[:batch], version)  # warm-up
        chunks = [texts[i : i + batch] for i in range(0, len(texts), batch)]
        gate = asyncio.Semaphore(concurrency)

        async def one(chunk: list[str]) -> np.ndarray:
            async with gate:
                return await client.embed(chunk, version)

        started = time.perf_counter()
        vectors = await asyncio.gather(*(one(c) for c in chunks))
        return np.concatenate(vectors), time.perf_counter() - started
    finally:
        await client.close()


def bench_embedding(triton: TritonServer, count: int) -> dict:
    from sentence_transformers import SentenceTransformer

    from export.cli import default_source

    texts = sentences(count, seed=1)
    log(f"(a) embedding {count} sentences: sentence-transformers in-process ...")
    model = SentenceTransformer(str(default_source()), device="cpu")
    model.encode(texts[:32])
    started = time.perf_counter()
    reference = model.encode(texts, batch_size=32, normalize_embeddings=True)
    st_s = time.perf_counter() - started
    del model
    runs = {}
    for name, batch, concurrency in [("triton_batch32_c4", 32, 4),
                                     ("triton_single_text_c16", 1, 16)]:
        log(f"(a) Triton: requests of {batch} text(s), {concurrency} in flight ...")
        vectors, seconds = asyncio.run(_triton_embed(triton, texts, batch, concurrency))
        cosine = np.sum(vectors * reference, axis=1)
        runs[name] = {"seconds": round(seconds, 3),
                      "sentences_per_s": round(count / seconds, 1),
                      "ratio_vs_sentence_transformers": round(st_s / seconds, 3),
                      "min_cosine_vs_sentence_transformers": round(float(cosine.min()), 6)}
    return {"sentences": count,
            "sentence_transformers": {"seconds": round(st_s, 3),
                                      "sentences_per_s": round(count / st_s, 1)},
            **runs}


def bench_ingest(url: str, count: int, batch: int) -> dict:
    texts = sentences(count, seed=2)
    log(f"(b) ingest {count} memories in batches of {batch} ...")
    with httpx.Client(base_url=url, timeout=120) as http:
        started = time.perf_counter()
        for start in range(0, count, batch):
            items = [{"user_id": "bench", "text": t, "metadata": {"n": start + i}}
                     for i, t in enumerate(texts[start : start + batch])]
            response = http.post("/v1/memories/batch", json={"items": items})
            response.raise_for_status()
        seconds = time.perf_counter() - started
    return {"memories": count, "batch": batch, "seconds": round(seconds, 3),
            "memories_per_s": round(count / seconds, 1)}


def bench_search(url: str, count: int, memories: int) -> dict:
    queries = [f"what does {q.split(' (#')[0].lower()}?" for q in sentences(count, seed=3)]
    log(f"(c) {count} searches, single client, over {memories} memories of one user ...")
    samples = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for query in queries[:20]:  # warm-up
            http.post("/v1/memories/search", json={"user_id": "bench", "query": query})
        for query in queries:
            started = time.perf_counter()
            response = http.post("/v1/memories/search",
                                 json={"user_id": "bench", "query": query, "limit": 10})
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
            assert len(response.json()["results"]) == 10
    return {"queries": count, "memories_in_scope": memories, "limit": 10,
            **percentiles(samples), "queries_per_s": round(count / sum(samples), 1)}


def bench_migration(work: Path, count: int) -> dict:
    """(d) A real version swap: fp32 v1 -> per-channel int8 v2 (exported here), on ``count``
    memories, with single-client search latency before and during the re-embedding."""
    import subprocess

    from loadtest.repository import copy_latest_as_v1

    repo = copy_latest_as_v1(work / "swap")
    with TritonServer(
        model_repository=repo, http_port=free_port(), grpc_port=free_port(),
        metrics_port=free_port(), log_file=work / "swap" / "triton.log",
    ) as triton:
        log("(d) exporting the int8 variant as version 2 ...")
        subprocess.run([sys.executable, "-m", "export", "embedder", "--quantize", "int8",
                        "--repository", str(repo)], check=True, capture_output=True)
        env = {"MEMORY_MODEL_REPOSITORY": str(repo), "MEMORY_ADMISSION_ENABLED": "false"}
        with gateway_process(triton, work / "swap" / "data", work / "swap", env=env) as url, \
                httpx.Client(base_url=url, timeout=120) as http:
            texts = sentences(count, seed=7)
            for start in range(0, count, 500):
                http.post("/v1/memories/batch", json={"items": [
                    {"user_id": f"u{i % 50}", "text": t}
                    for i, t in enumerate(texts[start : start + 500], start)]}
                ).raise_for_status()
            before = _timed_search(http, 200)
            log(f"(d) migrating {count} memories to version 2 ...")
            started = time.perf_counter()
            http.post("/v1/admin/models/embedder/activate", json={"version": "2"}
                      ).raise_for_status()
            during: list[float] = []
            while http.get("/v1/admin/models/embedder/migration").json()["state"] != "done":
                during += _timed_search(http, 10)
            seconds = time.perf_counter() - started
            models = http.get("/v1/admin/models").json()["embedder"]
    return {"memories": count, "from": "fp32 v1", "to": "int8 per-channel v2",
            "seconds": round(seconds, 2), "reembed_per_s": round(count / seconds, 1),
            "active_after": models["active"], "served_after": models["served"],
            "search_before": percentiles(before),
            "search_during": percentiles(during) | {"searches": len(during)}}


def _timed_search(http: httpx.Client, count: int) -> list[float]:
    samples = []
    for i in range(count):
        started = time.perf_counter()
        http.post("/v1/memories/search", json={"user_id": f"u{i % 50}",
                                               "query": "travel plans"}).raise_for_status()
        samples.append(time.perf_counter() - started)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--memories", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--migration", type=int, default=10_000,
                        help="memories to migrate fp32 -> int8 in (d); 0 = skip")
    parser.add_argument("--reranker", metavar="DIR",
                        help="cross-encoder folder or hub id: adds section (e), the reranker")
    parser.add_argument("--rerank-queries", type=int, default=200,
                        help="(e): searches per mode; the throughput run scores 50 pairs each")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    report: dict = {"benchmark": "foundation", "started_at": datetime.now(UTC).isoformat(),
                    "machine": {"cpus": __import__("os").cpu_count(),
                                "platform": platform.platform()}}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        with triton_server(work) as triton:
            report["embedding"] = bench_embedding(triton, args.sentences)
            with gateway_process(triton, work / "data", work) as url:
                report["ingest"] = bench_ingest(url, args.memories, args.batch)
                report["search"] = bench_search(url, args.queries, args.memories)
        if args.migration:
            report["migration"] = bench_migration(work, args.migration)
        if args.reranker:
            from loadtest.bench.rerank import bench_rerank

            report["rerank"] = bench_rerank(work, args.reranker, queries=args.rerank_queries,
                                            memories=args.memories, log=log)
    write_report(args.out, "bench", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
