"""Section (e) of ``make bench`` (``--reranker DIR``): what the optional re-ranker costs.

- throughput in (query, passage) pairs/s of the exported reranker through Triton, against the
  same model in PyTorch in-process on the same pairs in the same run (plus the max |diff| of
  their logits, as a parity check under load);
- single-client search latency p50/p99 through the gateway, with and without ``rerank``, over
  one user's memories (searches alternate, so both see the same machine).

The reranker is exported from DIR on the spot into a scratch repository next to a copy of the
embedder, so the section needs nothing but a cross-encoder folder (or hub id).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import tritonclient.grpc.aio as grpcclient

from gateway.inference.reranker import RerankerClient
from gateway.metrics import Metrics
from gateway.triton import TritonServer
from loadtest.bench.timing import percentiles
from loadtest.corpus import sentences
from loadtest.repository import copy_latest_as_v1
from loadtest.stack import free_port, gateway_process

POOL = 50  # pairs per request: one search's candidate pool at the default settings


def _groups(queries: int) -> list[tuple[str, list[str]]]:
    """``queries`` searches, each with POOL passages from the benchmark corpus."""
    passages = sentences(queries * POOL, seed=11)
    asks = [f"what does {s.split(' (#')[0].lower()}?" for s in sentences(queries, seed=12)]
    return [(q, passages[i * POOL : (i + 1) * POOL]) for i, q in enumerate(asks)]


def _torch_scores(model_dir: Path, max_length: int, groups: list[tuple[str, list[str]]]
                  ) -> tuple[np.ndarray, float]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()

    def run(query: str, passages: list[str]) -> np.ndarray:
        encoded = tokenizer([query] * len(passages), passages, padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
        return model(**encoded).logits[:, 0].float().numpy()

    with torch.inference_mode():
        run(*groups[0])  # warm-up
        started = time.perf_counter()
        scores = [run(q, p) for q, p in groups]
    return np.concatenate(scores), time.perf_counter() - started


async def _triton_scores(triton: TritonServer, groups: list[tuple[str, list[str]]],
                         concurrency: int) -> tuple[np.ndarray, float]:
    channel = grpcclient.InferenceServerClient(triton.grpc_url)
    client = RerankerClient(channel, "reranker", timeout_s=120, retry_after_s=1,
                            metrics=Metrics())
    try:
        await client.score(*groups[0])  # warm-up
        gate = asyncio.Semaphore(concurrency)

        async def one(query: str, passages: list[str]) -> np.ndarray:
            async with gate:
                return await client.score(query, passages)

        started = time.perf_counter()
        scores = await asyncio.gather(*(one(q, p) for q, p in groups))
        return np.concatenate(scores), time.perf_counter() - started
    finally:
        await channel.close()


def _throughput(triton: TritonServer, model_dir: Path, max_length: int, queries: int,
                log: Callable[[str], None]) -> dict:
    groups = _groups(queries)
    pairs = queries * POOL
    log(f"(e) reranker: {pairs} pairs in PyTorch in-process ...")
    reference, torch_s = _torch_scores(model_dir, max_length, groups)
    out: dict = {"pairs": pairs, "pairs_per_request": POOL, "max_length": max_length,
                 "pytorch": {"seconds": round(torch_s, 3), "pairs_per_s": round(pairs / torch_s)}}
    for concurrency in (1, 4):
        log(f"(e) reranker: {pairs} pairs through Triton, {concurrency} request(s) in flight ...")
        served, seconds = asyncio.run(_triton_scores(triton, groups, concurrency))
        out[f"triton_c{concurrency}"] = {
            "seconds": round(seconds, 3), "pairs_per_s": round(pairs / seconds),
            "ratio_vs_pytorch": round(torch_s / seconds, 3),
            "max_abs_diff_vs_pytorch": float(np.max(np.abs(served - reference))),
        }
    return out


def _search_latency(url: str, memories: int, queries: int, log: Callable[[str], None]) -> dict:
    texts = sentences(memories, seed=13)
    asks = [f"what does {s.split(' (#')[0].lower()}?" for s in sentences(queries, seed=14)]
    log(f"(e) search latency over {memories} memories, {queries} queries each way ...")
    samples: dict[bool, list[float]] = {False: [], True: []}
    with httpx.Client(base_url=url, timeout=120) as http:
        for start in range(0, memories, 500):
            http.post("/v1/memories/batch", json={"items": [
                {"user_id": "bench", "text": t} for t in texts[start : start + 500]]}
            ).raise_for_status()
        for i, ask in enumerate(asks[:10] + asks):
            for rerank in (False, True):
                started = time.perf_counter()
                response = http.post("/v1/memories/search", json={
                    "user_id": "bench", "query": ask, "limit": 10, "rerank": rerank})
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                if i >= 10:  # the first ten are warm-up
                    samples[rerank].append(elapsed)
    return {"memories_in_scope": memories, "queries": queries, "limit": 10,
            "pool": max(10 * 4, 50),
            "without_rerank": percentiles(samples[False]),
            "with_rerank": percentiles(samples[True])}


def bench_rerank(work: Path, model: str, *, queries: int, memories: int,
                 log: Callable[[str], None]) -> dict:
    """Export ``model`` as the reranker into a scratch repository and measure (e)."""
    root = work / "rerank"
    repo = copy_latest_as_v1(root, "embedder")
    log(f"(e) exporting the reranker from {model} ...")
    subprocess.run([sys.executable, "-m", "export", "reranker", "--model", model,
                    "--repository", str(repo)], check=True, capture_output=True)
    manifest = json.loads((repo / "reranker" / "1" / "export_manifest.json").read_text())
    with TritonServer(model_repository=repo, models=("embedder", "reranker"),
                      http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                      log_file=root / "triton.log") as triton:
        report = {"model": model,
                  "validation": manifest["validation"]["fp32"],
                  "throughput": _throughput(triton, Path(manifest["source"]["path"]),
                                            manifest["max_length"], queries, log)}
        env = {"MEMORY_MODEL_REPOSITORY": str(repo), "MEMORY_ADMISSION_ENABLED": "false"}
        with gateway_process(triton, root / "data", root, env=env) as url:
            report["search"] = _search_latency(url, memories, queries, log)
    return report
