"""``make bench-remote-embed``: the same model served two ways, side by side in one run.

One Triton serves all-MiniLM-L6-v2 as version 1 (the ONNX export); infinity-emb serves the
same model (its ONNX engine by default, ``--infinity-engine torch`` for the other), declared as
remote version 2 (``2.remote.toml``). ``--before DIR`` adds a gateway run from another checkout
(``git archive <commit> | tar -x -C DIR``) on version 2 too: its remote client beside this one,
on the same server in the same run. Two gateways on stores of their
own: one keeps version 1 active, the other activates version 2. Both get the same batch
ingest (same texts, ``/v1/memories/batch``) and the same sequential searches (new queries, so
no query-cache hits), in alternating blocks so both see the same machine load. Each search
block is bracketed by reads of the gateway's /metrics, so each side's search splits into its
query embedding (as the gateway timed it) and the rest. Targets (issue 21): remote ingest
rate >= 0.8x the Triton version's; remote search p50 within 2 ms of it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.triton import TritonServer
from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.corpus import sentences
from loadtest.infinity import ENGINES, SERVED_NAME, InfinityServer, declare_remote
from loadtest.paths import RESULTS
from loadtest.repository import copy_latest_as_v1
from loadtest.stack import free_port, gateway_process

TARGET_INGEST_RATIO = 0.8
TARGET_P50_DELTA_MS = 2.0
# triton: the shipped settings (queries embedded in the gateway by its ONNX encoder);
# triton_served: the same version with MEMORY_QUERY_ENCODER=triton (queries over gRPC to
# Triton's batcher-free twin: a model server over the network, as the remote side is).
SIDES = ("triton", "triton_served", "remote")
BEFORE = "remote_before"  # --before: the same remote version through another checkout
INGESTING = ("triton", "remote", BEFORE)  # triton_served ingests exactly as triton does
# Where each side's gateway times a search query's embedding (a histogram, and a label its
# series must carry): the in-process encoder, the twin on Triton, the remote server's answers.
QUERY_EMBEDDING = {
    "triton": ("memory_query_encoder_seconds", {}),
    "triton_served": ("memory_triton_request_seconds", {"model": "embedder_query"}),
    "remote": ("memory_remote_embed_seconds", {"outcome": "ok"}),
    BEFORE: ("memory_remote_embed_seconds", {"outcome": "ok"}),
}


def activate_remote(url: str) -> None:
    with httpx.Client(base_url=url, timeout=300) as http:
        started = http.post("/v1/admin/models/embedder/activate", json={"version": "2"})
        if started.status_code != 202:
            raise RuntimeError(f"activating the remote version: {started.text}")
        while http.get("/v1/admin/models/embedder/migration").json()["state"] != "done":
            time.sleep(0.2)


def ingest_block(http: httpx.Client, texts: list[str], user: str, batch: int) -> float:
    """Seconds to add ``texts`` in batches of ``batch``."""
    began = time.perf_counter()
    for start in range(0, len(texts), batch):
        items = [{"user_id": user, "text": t} for t in texts[start:start + batch]]
        response = http.post("/v1/memories/batch", json={"items": items})
        response.raise_for_status()
    return time.perf_counter() - began


def search_block(http: httpx.Client, queries: list[str], user: str) -> list[float]:
    samples = []
    for query in queries:
        began = time.perf_counter()
        http.post("/v1/memories/search",
                  json={"user_id": user, "query": query, "limit": 5}).raise_for_status()
        samples.append(time.perf_counter() - began)
    return samples


def histogram_totals(metrics: str, name: str, labels: dict[str, str]) -> tuple[float, float]:
    """Seconds and observations of histogram ``name`` in a /metrics text, over its series
    whose labels include ``labels``."""
    totals = {f"{name}_sum": 0.0, f"{name}_count": 0.0}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name in totals and labels.items() <= sample.labels.items():
                totals[sample.name] += sample.value
    return totals[f"{name}_sum"], totals[f"{name}_count"]


def embedding_totals(http: httpx.Client, side: str) -> tuple[float, float]:
    return histogram_totals(http.get("/metrics").text, *QUERY_EMBEDDING[side])


def direct_block(http: httpx.Client, queries: list[str]) -> list[float]:
    """One query text per request straight to the embedding server (base64, as the gateway
    asks): its own share."""
    samples = []
    for query in queries:
        began = time.perf_counter()
        http.post("/embeddings", json={"model": SERVED_NAME, "input": [query],
                                       "encoding_format": "base64"}).raise_for_status()
        samples.append(time.perf_counter() - began)
    return samples


def measure(urls: dict[str, str], rounds: int, per_round: int, batch: int,
            searches: int, server: str) -> dict[str, Any]:
    clients = {side: httpx.Client(base_url=url, timeout=120) for side, url in urls.items()}
    texts = sentences(rounds * per_round, seed=21)
    queries = [f"what does {q.split(' (#')[0].lower()}?" for q in sentences(
        rounds * searches + 8, seed=42)]
    sides = tuple(urls)
    ingest_s = dict.fromkeys(sides, 0.0)
    search_s: dict[str, list[float]] = {side: [] for side in sides}
    # the searches' query embeddings as each gateway timed them (seconds, requests)
    embed_s, embed_n = dict.fromkeys(sides, 0.0), dict.fromkeys(sides, 0.0)
    direct = httpx.Client(base_url=server, timeout=120)
    direct_s: list[float] = []
    for http in clients.values():  # warm both paths (pools, first batches)
        ingest_block(http, sentences(batch, seed=7), "warm", batch)
        search_block(http, queries[-8:], "warm")
    for r in range(rounds):
        block = texts[r * per_round:(r + 1) * per_round]
        asked = queries[r * searches:(r + 1) * searches]
        order = sides if r % 2 == 0 else sides[::-1]
        for side in (s for s in order if s in INGESTING):
            ingest_s[side] += ingest_block(clients[side], block, "bench", batch)
        ingest_block(clients["triton_served"], block, "bench", batch)  # same index size
        for side in order:
            seconds, count = embedding_totals(clients[side], side)
            search_s[side] += search_block(clients[side], asked, "bench")
            after = embedding_totals(clients[side], side)
            embed_s[side] += after[0] - seconds
            embed_n[side] += after[1] - count
        direct_s += direct_block(direct, asked)
    direct.close()
    encoders = {side: clients[side].get("/readyz").json()["query_encoder"] for side in sides}
    report: dict[str, Any] = {"server_direct": percentiles(direct_s) | {"n": len(direct_s)}}
    for side in (s for s in ("remote", BEFORE) if s in clients):
        report[f"{side}_attempts"] = attempt_latency(clients[side].get("/metrics").text)
    for http in clients.values():
        http.close()
    for side in sides:
        report[side] = {"query_encoder": encoders[side],
                        "search": percentiles(search_s[side]) | {"n": len(search_s[side])}}
        report[side] |= query_embedding_share(search_s[side], embed_s[side], embed_n[side])
        if side in INGESTING:
            report[side] |= {"ingest_texts_per_s": round(len(texts) / ingest_s[side], 1),
                             "texts": len(texts)}
    ratio = report["remote"]["ingest_texts_per_s"] / report["triton"]["ingest_texts_per_s"]
    delta = report["remote"]["search"]["p50_ms"] - report["triton"]["search"]["p50_ms"]
    report["ingest_ratio"] = round(ratio, 3)
    report["search_p50_delta_ms"] = round(delta, 3)
    report["search_p50_delta_vs_served_ms"] = round(
        report["remote"]["search"]["p50_ms"] - report["triton_served"]["search"]["p50_ms"], 3)
    # What the gateway adds to the server's own time (HTTP client, index, store).
    for side in (s for s in ("remote", BEFORE) if s in clients):
        report[side]["gateway_share_p50_ms"] = round(
            report[side]["search"]["p50_ms"] - report["server_direct"]["p50_ms"], 3)
    # The remote path's cost beyond the embedding call itself: the rest of a remote search
    # against the rest of a Triton one (both: HTTP in, index, store, keyword search, ranking).
    for side in (s for s in ("remote", BEFORE) if s in clients):
        report[side]["rest_delta_mean_ms"] = round(
            report[side]["rest_mean_ms"] - report["triton"]["rest_mean_ms"], 3)
    report["targets"] = {"ingest_ratio_min": TARGET_INGEST_RATIO,
                         "search_p50_delta_ms_max": TARGET_P50_DELTA_MS,
                         "ingest_met": ratio >= TARGET_INGEST_RATIO,
                         "search_met": delta <= TARGET_P50_DELTA_MS}
    return report


def query_embedding_share(searches: list[float], seconds: float,
                          requests: float) -> dict[str, float]:
    """A search's mean time, its query embedding's mean (as the gateway timed it: for a
    remote version the HTTP round trip to the server) and the rest of the search."""
    search_ms = sum(searches) / len(searches) * 1000 if searches else 0.0
    embed_ms = seconds / len(searches) * 1000 if searches else 0.0
    return {"search_mean_ms": round(search_ms, 3), "query_embeddings": requests,
            "embed_mean_ms": round(embed_ms, 3), "rest_mean_ms": round(search_ms - embed_ms, 3)}


def attempt_latency(metrics: str) -> dict[str, float]:
    """Count and mean of the gateway's successful requests to the remote server."""
    seconds, count = histogram_totals(metrics, "memory_remote_embed_seconds", {"outcome": "ok"})
    return {"requests": count, "mean_ms": round(seconds / count * 1000, 3) if count else 0.0}


def table(report: dict[str, Any]) -> str:
    rows = ["| version | ingest texts/s | search p50 ms | p95 ms | p99 ms | query encoder "
            "| search mean ms | of it, query embedding | the rest |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    for side, name in (("triton", "Triton version 1 (shipped settings)"),
                       ("triton_served", "Triton version 1, queries to Triton"),
                       ("remote", "remote version 2 (infinity-emb)"),
                       (BEFORE, "remote version 2, gateway from --before")):
        if side not in report:
            continue
        s = report[side]
        rows.append(f"| {name} | {s.get('ingest_texts_per_s', '-')} | {s['search']['p50_ms']} | "
                    f"{s['search']['p95_ms']} | {s['search']['p99_ms']} | {s['query_encoder']} | "
                    f"{s['search_mean_ms']} | {s['embed_mean_ms']} | {s['rest_mean_ms']} |")
    server = report["server_direct"]
    rows.append(f"| infinity-emb alone (one text per POST, no gateway) | - | {server['p50_ms']} | "
                f"{server['p95_ms']} | {server['p99_ms']} | - | | | |")
    rows.append(f"\ningest ratio {report['ingest_ratio']} (target >= {TARGET_INGEST_RATIO}); "
                f"search p50 delta {report['search_p50_delta_ms']} ms (target <= "
                f"{TARGET_P50_DELTA_MS}; {report['search_p50_delta_vs_served_ms']} ms against "
                f"queries to Triton); remote requests: {report['remote_attempts']}; "
                f"gateway's share of a remote search p50: "
                f"{report['remote']['gateway_share_p50_ms']} ms; a remote search's rest "
                f"(all but the embedding call) against a Triton one's: "
                f"{report['remote']['rest_delta_mean_ms']:+} ms"
                + (f" ({report[BEFORE]['gateway_share_p50_ms']} ms from --before)"
                   if BEFORE in report else "") + "; "
                f"load average {report['load_average_start']:.2f} -> "
                f"{report['load_average_end']:.2f} on {report['cpus']} CPUs")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.remote_embed",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="alternating blocks per side")
    parser.add_argument("--texts", type=int, default=256, help="texts ingested per block")
    parser.add_argument("--batch", type=int, default=64, help="items per batch request")
    parser.add_argument("--searches", type=int, default=50, help="searches per block")
    parser.add_argument("--remote-batch", type=int, default=32,
                        help="batch_size of the remote declaration (texts per HTTP request)")
    parser.add_argument("--infinity-engine", choices=ENGINES, default="optimum",
                        help="infinity-emb's engine: optimum (ONNX Runtime, the default) or "
                             "torch")
    parser.add_argument("--infinity-batch", type=int, default=None,
                        help="infinity-emb's --batch-size (its default: 32)")
    parser.add_argument("--infinity-threads", type=int, default=1,
                        help="torch threads of infinity-emb's torch engine (2 made single "
                             "queries 5-50x slower on the shared 2-core machine: OpenMP "
                             "spinning); ONNX Runtime sizes its own pool")
    parser.add_argument("--before", type=Path, metavar="DIR",
                        help="also run version 2 through a gateway from this checkout")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"benchmark": "remote-embed", "cpus": os.cpu_count(),
                              "load_average_start": os.getloadavg()[0],
                              "args": {k: str(v) if isinstance(v, Path) else v
                                       for k, v in vars(args).items() if k != "out"}}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        repo = copy_latest_as_v1(scratch)
        triton = TritonServer(model_repository=repo, http_port=free_port(),
                              grpc_port=free_port(), metrics_port=free_port(),
                              log_file=scratch / "triton" / "triton.log")
        env = {"MEMORY_MODEL_REPOSITORY": str(repo), "MEMORY_DEADLINE_ADMIN_MS": "300000"}
        with InfinityServer(scratch / "infinity", threads=args.infinity_threads,
                            engine=args.infinity_engine,
                            batch_size=args.infinity_batch) as infinity, \
                triton, \
                gateway_process(triton, scratch / "a", scratch / "a-log", env) as triton_url, \
                gateway_process(triton, scratch / "b", scratch / "b-log", env) as remote_url, \
                gateway_process(triton, scratch / "c", scratch / "c-log",
                                env | {"MEMORY_QUERY_ENCODER": "triton"}) as served_url, \
                contextlib.ExitStack() as before:
            urls = {"triton": triton_url, "triton_served": served_url, "remote": remote_url}
            if args.before is not None:
                tree = args.before.resolve()
                urls[BEFORE] = before.enter_context(gateway_process(
                    triton, scratch / "d", scratch / "d-log", env | {"PYTHONPATH": str(tree)},
                    cwd=tree))
            declare_remote(repo, "2", infinity.base_url, batch_size=args.remote_batch)
            for side in ("remote", BEFORE):
                if side in urls:
                    activate_remote(urls[side])
            report |= measure(urls, args.rounds, args.texts, args.batch, args.searches,
                              infinity.base_url)
    report["load_average_end"] = os.getloadavg()[0]
    write_report(args.out, "bench-remote-embed", report, print)
    print(table(report))
    met = report["targets"]
    return 0 if met["ingest_met"] and met["search_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
