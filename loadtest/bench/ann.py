"""``make bench-ann``: the vector search engine per backend, as JSON plus a recall/QPS plot.

Data: synthetic clustered 384-d sets (default 100k and 200k rows) and, with ``--real N``, real
MiniLM embeddings of N generated sentences made by the Triton embedder. Queries are held out
(stored rows plus noise); ground truth is exact search. For each set and backend: build time,
bytes, recall@10, QPS at batch 1 and 64, p50/p99 at batch 1, filtered search at 50/10/1%.
Then: per-user search latency in a many-user engine, what micro-batching gains, and search
latency end to end through a gateway process holding ``--gateway-rows`` memories per backend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from gateway.index.batcher import SearchBatcher
from gateway.index.exact import ExactIndex
from gateway.index.factory import gpu_available
from gateway.index.graph import GraphBuilder
from gateway.index.hnsw import HnswBuilder
from gateway.index.partitioned import AnnPolicy, PartitionedIndex, held_out_queries
from loadtest.paths import RESULTS

K = 10


def log(message: str) -> None:
    print(f"[bench-ann] {message}", file=sys.stderr, flush=True)


def clustered(n: int, dim: int = 384, clusters: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 50_000):
        stop = min(start + 50_000, n)
        block = centres[rng.integers(0, clusters, stop - start)]
        block += 0.7 * rng.standard_normal(block.shape).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def real_embeddings(count: int) -> np.ndarray:
    """MiniLM vectors of generated sentences, through the real Triton embedder."""
    import tempfile

    from gateway.inference.client import EmbedderClient
    from gateway.metrics import Metrics
    from loadtest.corpus import sentences
    from loadtest.stack import triton_server

    texts = sentences(count, seed=5)

    async def embed(url: str) -> np.ndarray:
        client = EmbedderClient(url, "embedder", timeout_s=120, retry_after_s=1, metrics=Metrics())
        try:
            gate = asyncio.Semaphore(4)

            async def chunk(start: int) -> np.ndarray:
                async with gate:
                    return await client.embed(texts[start : start + 256])

            return np.concatenate(await asyncio.gather(
                *(chunk(s) for s in range(0, count, 256))))
        finally:
            await client.close()

    with tempfile.TemporaryDirectory() as tmp, triton_server(Path(tmp)) as triton:
        log(f"embedding {count} sentences with the Triton embedder ...")
        return asyncio.run(embed(triton.grpc_url))


def recall_of(found: list, truth: list) -> float:
    return float(np.mean([len({h.id for h in f} & {h.id for h in t}) / max(len(t), 1)
                          for f, t in zip(found, truth, strict=True)]))


def timed_searches(index: PartitionedIndex, queries: np.ndarray, batch: int,
                   allow: set[str] | None = None) -> tuple[list, dict]:
    found, samples = [], []
    for start in range(0, len(queries), batch):
        chunk = queries[start : start + batch]
        began = time.perf_counter()
        found += index.search_batch("kb", chunk, K, allow=allow)
        samples.append(time.perf_counter() - began)
    total = sum(samples)
    figures = {"qps": round(len(queries) / total, 1)}
    if batch == 1:
        ms = np.asarray(samples) * 1000
        figures |= {"p50_ms": round(float(np.percentile(ms, 50)), 3),
                    "p99_ms": round(float(np.percentile(ms, 99)), 3)}
    return found, figures


def bench_backend(name: str, builder: GraphBuilder | None, vectors: np.ndarray,
                  queries: np.ndarray, truth: list, filters: dict[str, set[str]],
                  filter_truth: dict[str, list]) -> dict:
    ids = [f"m{i}" for i in range(len(vectors))]
    index = PartitionedIndex(builder, AnnPolicy(threshold=1), background=False)
    began = time.perf_counter()
    index.add("kb", ids, vectors)
    build_s = time.perf_counter() - began
    stats = index.stats()
    snapshot = index._partitions["kb"].snapshot
    result: dict = {"build_s": round(build_s, 2), "bytes": stats.bytes,
                    "graph": snapshot is not None,
                    "tuned_effort": snapshot.effort if snapshot else None,
                    "probe_recall": round(snapshot.recall, 4) if snapshot else None}
    found, result["batch1"] = timed_searches(index, queries[:300], 1)
    result["recall_at_10"] = round(recall_of(found, truth[:300]), 4)
    _, result["batch64"] = timed_searches(index, queries, 64)
    result["filtered"] = {}
    for share, allow in filters.items():
        found, figures = timed_searches(index, queries[:100], 1, allow=allow)
        result["filtered"][share] = figures | {
            "recall_at_10": round(recall_of(found, filter_truth[share]), 4)}
    log(f"  {name}: build {build_s:.1f}s recall {result['recall_at_10']} "
        f"qps@1 {result['batch1']['qps']} qps@64 {result['batch64']['qps']}")
    index.close()
    return result


def bench_dataset(label: str, vectors: np.ndarray, backends: dict) -> dict:
    log(f"dataset {label}: {len(vectors)} x {vectors.shape[1]}")
    queries = held_out_queries(vectors, 1000, seed=1)
    exact = ExactIndex()
    ids = [f"m{i}" for i in range(len(vectors))]
    exact.add("kb", ids, vectors)
    truth = exact.search_batch("kb", queries, K)
    rng = np.random.default_rng(2)
    filters = {f"{int(share * 100)}%": {ids[i] for i in np.flatnonzero(
        rng.random(len(ids)) < share)} for share in (0.5, 0.1, 0.01)}
    filter_truth = {s: exact.search_batch("kb", queries[:100], K, allow=a)
                    for s, a in filters.items()}
    out = {"rows": len(vectors), "dim": int(vectors.shape[1])}
    for name, builder in backends.items():
        out[name] = bench_backend(name, builder, vectors, queries, truth, filters, filter_truth)
    if "exact" in out and "hnsw" in out:
        out["hnsw_vs_exact_qps_batch1"] = round(
            out["hnsw"]["batch1"]["qps"] / out["exact"]["batch1"]["qps"], 2)
    return out


def bench_many_users(users: int, per_user: int, searches: int) -> dict:
    """Per-user search latency in one engine holding users x per_user vectors (exact each)."""
    log(f"many users: {users} x {per_user} memories ...")
    index = PartitionedIndex(HnswBuilder(), AnnPolicy(threshold=20_000), background=False)
    rng = np.random.default_rng(3)
    base = clustered(per_user * 50, seed=4)
    for user in range(users):
        picked = base[rng.integers(0, len(base), per_user)]
        index.add(f"u{user}", [f"u{user}-{i}" for i in range(per_user)], picked)
    queries = held_out_queries(base, searches, seed=6)
    samples = []
    for query in queries:
        user = f"u{int(rng.integers(0, users))}"
        began = time.perf_counter()
        index.search(user, query, K)
        samples.append(time.perf_counter() - began)
    ms = np.asarray(samples) * 1000
    return {"users": users, "memories_per_user": per_user, "searches": searches,
            "bytes": index.stats().bytes,
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def bench_micro_batching(vectors: np.ndarray, concurrency: int, searches: int) -> dict:
    """Concurrent searches on one big exact partition: one call each vs micro-batched."""
    index = ExactIndex()
    index.add("kb", [f"m{i}" for i in range(len(vectors))], vectors)
    queries = held_out_queries(vectors, searches, seed=8)

    async def run(batched: bool) -> float:
        batcher = SearchBatcher(index, window_s=0.001 if batched else 0.0,
                                max_batch=256 if batched else 1)
        gate = asyncio.Semaphore(concurrency)

        async def one(query: np.ndarray) -> None:
            async with gate:
                await batcher.search("kb", query, K)

        began = time.perf_counter()
        await asyncio.gather(*(one(q) for q in queries))
        elapsed = time.perf_counter() - began
        await batcher.close()
        return elapsed

    single, merged = asyncio.run(run(False)), asyncio.run(run(True))
    return {"rows": len(vectors), "concurrency": concurrency, "searches": searches,
            "one_call_each_qps": round(searches / single, 1),
            "micro_batched_qps": round(searches / merged, 1),
            "gain": round(single / merged, 2)}


def bench_gateway(rows: int, searches: int, backends: list[str]) -> dict:
    """End to end through a real gateway process: one collection of ``rows`` memories (client
    vectors, so ingest and queries skip Triton and the figures isolate gateway + index)."""
    import tempfile

    import httpx

    from loadtest.stack import gateway_process, triton_server

    vectors = clustered(rows, seed=12)
    queries = held_out_queries(vectors, searches, seed=13)
    out: dict = {"rows": rows, "searches": searches, "query": "client embedding, limit 10"}
    with tempfile.TemporaryDirectory() as tmp, triton_server(Path(tmp)) as triton:
        for backend in backends:
            work = Path(tmp) / backend
            threshold = min(20_000, rows // 2)  # make sure the collection gets its graph
            env = {"MEMORY_INDEX_BACKEND": backend, "MEMORY_ADMISSION_ENABLED": "false",
                   "MEMORY_ANN_THRESHOLD": str(threshold),
                   "MEMORY_JOBS_USER_SIZE": "0"}  # no size-triggered job mid-measurement
            with gateway_process(triton, work / "data", work, env=env) as url, \
                    httpx.Client(base_url=url, timeout=300) as http:
                log(f"gateway/{backend}: ingesting {rows} memories ...")
                began = time.perf_counter()
                for start in range(0, rows, 1000):
                    items = [{"user_id": "kb", "text": f"memory {i}",
                              "embedding": [round(float(v), 5) for v in vectors[i]]}
                             for i in range(start, min(start + 1000, rows))]
                    http.post("/v1/memories/batch", json={"items": items}).raise_for_status()
                ingest_s = time.perf_counter() - began
                deadline = time.monotonic() + 1800
                covered = f"memory_index_graph_vectors {float(rows)}"
                while backend != "exact" and covered not in http.get("/metrics").text:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no {backend} graph after 30 min")
                    time.sleep(1)
                samples = []
                for query in queries:
                    body = {"user_id": "kb", "embedding": [round(float(v), 5) for v in query]}
                    began = time.perf_counter()
                    http.post("/v1/memories/search", json=body).raise_for_status()
                    samples.append(time.perf_counter() - began)
                ms = np.asarray(samples) * 1000
                out[backend] = {"ingest_per_s": round(rows / ingest_s, 1),
                                "p50_ms": round(float(np.percentile(ms, 50)), 3),
                                "p99_ms": round(float(np.percentile(ms, 99)), 3)}
                log(f"gateway/{backend}: {out[backend]}")
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, data in report["datasets"].items():
        for backend in ("exact", "hnsw", "cagra"):
            if backend in data:
                point = data[backend]
                for batch, marker in (("batch1", "o"), ("batch64", "s")):
                    ax.scatter(point[batch]["qps"], point["recall_at_10"], marker=marker)
                    ax.annotate(f"{label} {backend} {batch}", (point[batch]["qps"],
                                point["recall_at_10"]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("queries per second (log)")
    ax.set_ylabel("recall@10")
    ax.set_title("Vector search: recall vs throughput (this machine)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.ann", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,200000",
                        help="synthetic set sizes, comma-separated (e.g. add 1000000)")
    parser.add_argument("--real", type=int, default=50_000,
                        help="real MiniLM sentences to embed through Triton (0 = skip)")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--per-user", type=int, default=200)
    parser.add_argument("--gateway-rows", type=int, default=100_000,
                        help="memories in the end-to-end gateway run per backend (0 = skip)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    backends: dict[str, GraphBuilder | None] = {"exact": None, "hnsw": HnswBuilder()}
    if gpu_available():
        from gateway.index.cagra import CagraBuilder

        backends["cagra"] = CagraBuilder(min_rows=0)
    report: dict = {"benchmark": "ann", "started_at": datetime.now(UTC).isoformat(),
                    "gpu": gpu_available(), "datasets": {}}
    if args.real:
        report["datasets"][f"minilm-{args.real}"] = bench_dataset(
            f"minilm-{args.real}", real_embeddings(args.real), backends)
    for size in (int(s) for s in args.sizes.split(",") if s):
        report["datasets"][f"clustered-{size}"] = bench_dataset(
            f"clustered-{size}", clustered(size), backends)
    report["many_users"] = bench_many_users(args.users, args.per_user, 2000)
    report["micro_batching"] = bench_micro_batching(clustered(100_000, seed=9), 32, 2000)
    if args.gateway_rows:
        report["gateway"] = bench_gateway(args.gateway_rows, 500,
                                          [b for b in backends if b != "cagra"] +
                                          (["cagra"] if "cagra" in backends else []))
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    path = args.out / f"bench-ann-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / f"bench-ann-{stamp}.png")
    print(json.dumps(report, indent=2))
    log(f"written to {path} (+ .png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
