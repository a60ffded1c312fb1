"""``make bench-query-path``: the query encoder's profiles side by side, in-process.

For each embedder version given (``--version-dir``, repeatable; default the served MiniLM), the
gateway's query encoder loaded at each precision (``fp32``: the version's graph; ``int8``: its
per-channel int8 copy, ``gateway.inference.int8_query``, what ``MEMORY_QUERY_PRECISION=int8``
runs), one thread and no spinning, as the gateway loads it. Profiles take turns text by text, so
all see the same machine load; the ratio is p50 fp32 / p50 int8 of the same version. Also the
cosine of each int8 query vector to the fp32 one (the stored vectors stay fp32).

With ``--http``, the same through the HTTP API: one Triton, one gateway per profile
(``HTTP_PROFILES``, each on a store of its own seeded alike with ``--memories`` memories of
realistic text and client vectors), hybrid text searches of one user sent to the gateways in
turn, query by query, so the ratios between profiles are measured under the same load; plus
the default gateway asked one repeated query (the query cache answers it).

The texts are the latency benchmark's queries (``loadtest.bench.latency.text_bodies``). Recall
per profile is ``loadtest.bench.retrieval --settings``'s job (docs/benchmarks/query-path.md).

    python -m loadtest.bench.query_path [--version-dir DIR ...] [--count 300]
    python -m loadtest.bench.query_path --http [--memories 1000] [--count 300]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from gateway.inference.int8_query import already_int8, int8_version
from gateway.inference.local_encoder import load_runtime
from gateway.settings import ROOT
from gateway.versions.control import repository_versions
from loadtest.bench.latency import seed, text_bodies, timed_searches
from loadtest.paths import RESULTS
from loadtest.stack import gateway_process, triton_server

# name -> gateway settings; the first is the baseline of the ratios
HTTP_PROFILES = {
    "before (fp32 query, no reordering)": {"MEMORY_QUERY_PRECISION": "fp32",
                                           "MEMORY_SEARCH_SPEAKER_BOOST": "1",
                                           "MEMORY_SEARCH_SESSION_WEIGHT": "0"},
    "int8 query, no reordering": {"MEMORY_SEARCH_SPEAKER_BOOST": "1",
                                  "MEMORY_SEARCH_SESSION_WEIGHT": "0"},
    "defaults (int8 query, speaker boost, session lift)": {},
}
CACHED = "defaults, one repeated query (cache hits)"
QUIET = {"MEMORY_ADMISSION_ENABLED": "false", "MEMORY_DEADLINE_SEARCH_MS": "0",
         "MEMORY_DEADLINE_INGEST_MS": "0", "MEMORY_JOBS_INTERVAL_S": "0"}


def _ms(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def measure(version_dir: Path, count: int, scratch: Path) -> dict:
    """fp32 and int8 query encoding of one version, interleaved text by text."""
    exported_int8 = already_int8(version_dir)
    runtimes = {"exported int8" if exported_int8 else "fp32":
                load_runtime(version_dir, 1, spinning=False)}
    if not exported_int8:
        runtimes["int8"] = load_runtime(int8_version(version_dir, scratch), 1, spinning=False)
    queries = [body["query"] for body in text_bodies("query-path", count, "qp")]
    for runtime in runtimes.values():
        runtime.embed(queries[:10])  # first-run allocations
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in runtimes}
    names = list(runtimes)
    for n, query in enumerate(queries):
        for name in names[n % len(names):] + names[: n % len(names)]:
            started = time.perf_counter()
            vector = runtimes[name].embed([query])
            samples[name].append(time.perf_counter() - started)
            vectors[name].append(vector[0])
    first = next(iter(vectors.values()))
    out: dict = {"version_dir": str(version_dir), "dimension": int(first[0].shape[0]),
                 "exported_as_int8": exported_int8, "queries": count,
                 "profiles": {name: _ms(s) for name, s in samples.items()}}
    if "int8" in runtimes:
        cosines = np.sum(np.asarray(vectors["fp32"]) * np.asarray(vectors["int8"]), axis=1)
        out["int8_vs_fp32"] = {
            "speedup_p50": round(out["profiles"]["fp32"]["p50_ms"]
                                 / out["profiles"]["int8"]["p50_ms"], 2),
            "cosine_mean": round(float(cosines.mean()), 4),
            "cosine_min": round(float(cosines.min()), 4)}
    return out


def measure_http(memories: int, count: int, work: Path) -> dict:
    """Hybrid text search p50 per profile through HTTP, the gateways taking turns."""
    with triton_server(work / "triton") as triton, contextlib.ExitStack() as stack:
        urls = {}
        for n, (name, env) in enumerate(HTTP_PROFILES.items()):
            urls[name] = stack.enter_context(gateway_process(
                triton, work / f"data-{n}", work / f"logs-{n}", env=QUIET | env))
        precision = {name: httpx.get(f"{url}/readyz").json().get("query_precision")
                     for name, url in urls.items()}
        for url in urls.values():
            seed(url, {"small": memories}, _dimension(url))
        bodies = text_bodies("small", count, "qp-http", mode="hybrid")
        repeated = {**bodies[0], "query": "what does the user prefer for dinner"}
        clients = {name: stack.enter_context(httpx.Client(base_url=url, timeout=60))
                   for name, url in urls.items()}
        warm = text_bodies("small", 10, "qp-warm", mode="hybrid")  # not cached: other texts
        for client in clients.values():
            timed_searches(client, warm)  # connections, first-run allocations
        lanes = [*HTTP_PROFILES, CACHED]
        samples: dict[str, list[float]] = {name: [] for name in lanes}
        for n, body in enumerate(bodies):
            for name in lanes[n % len(lanes):] + lanes[: n % len(lanes)]:
                client = clients[name if name != CACHED else lanes[-2]]
                samples[name] += timed_searches(client, [repeated if name == CACHED else body])
    base = float(np.percentile(samples[lanes[0]], 50))
    return {"memories": memories, "searches": count, "query_precision": precision,
            "profiles": {name: {"p50_ms": round(float(np.percentile(s, 50)), 2),
                                "p99_ms": round(float(np.percentile(s, 99)), 2),
                                "p50_vs_before": round(float(np.percentile(s, 50)) / base, 3)}
                         for name, s in samples.items()}}


def _dimension(url: str) -> int:
    """The active model's dimension, from the 422 a one-number embedding gets."""
    answer = httpx.post(f"{url}/v1/memories/search", json={
        "user_id": "probe", "embedding": [1.0], "limit": 1})
    found = re.search(r"expected (\d+) dimensions", answer.text)
    if found is None:
        raise RuntimeError(f"cannot learn the dimension: {answer.text[:200]}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.query_path",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--version-dir", type=Path, action="append", default=None)
    parser.add_argument("--count", type=int, default=300, help="queries per profile")
    parser.add_argument("--http", action="store_true",
                        help="the profiles through HTTP, one gateway each, in turn")
    parser.add_argument("--memories", type=int, default=1000, help="--http: the user's size")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    dirs = args.version_dir
    if not dirs:
        repository = ROOT / "model_repository"
        versions = repository_versions(repository, "embedder")
        if not versions:
            print("no embedder version: run `make export`", file=sys.stderr)
            return 2
        dirs = [repository / "embedder" / versions[-1]]
    report: dict = {"benchmark": "query-path", "started_at": datetime.now(UTC).isoformat(),
                    "load_average": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory(prefix="query-path-") as scratch:
        if args.http:
            report["http"] = measure_http(args.memories, args.count, Path(scratch))
        else:
            for version_dir in dirs:
                report["runs"].append(measure(version_dir.resolve(), args.count,
                                              Path(scratch)))
    report["load_average_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"query-path-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
