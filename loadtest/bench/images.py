"""``make bench-images``: how text and image memories share one result list, measured.

On a labelled set (8 colours; per colour 3 captionless pictures and 3 text notes, plus 40
unrelated texts from the benchmark corpus) in one user's memories, 32 text queries (4 phrasings
per colour) run three ways side by side: the fused default (text list and CLIP list by
reciprocal rank), ``modality: "image"`` and ``modality: "text"``. Reported: for pictures and
for notes, recall@5 (a right-colour memory of that kind in the top 5) and precision@5 (the
share of the top 5 that are right-colour memories of that kind), each way. Then the cost:
single-client text search p50/p99 for a user with these images against the same searches for
a user with the same texts and no images, alternating, in the same run. Last, the same text
searches for a user with ``--many`` pictures through two gateways on the same data, one with
the image-vector cache (``MEMORY_IMAGE_CACHE_MB``, the default) and one without (0: every
search reads the user's CLIP vectors from the store), alternating.

The CLIP model is ``--clip DIR`` (any CLIP folder or hub id), or with ``--tiny`` the tests'
tiny CLIP, trained on colours here first (``tests/support/tiny_clip.py``). It is exported on
the spot into a scratch repository next to a copy of the embedder and served by a real Triton.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from export.cli import main as export_main
from gateway.app import create_app
from gateway.settings import ROOT, Settings
from gateway.triton import TritonServer
from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.corpus import sentences
from loadtest.repository import copy_latest_as_v1
from loadtest.stack import free_port

PER_COLOUR = 3
K = 5


def _tiny_clip() -> ModuleType:
    """The tests' tiny CLIP builder (pictures, captions, colours), loaded by path."""
    path = ROOT / "tests" / "support" / "tiny_clip.py"
    spec = importlib.util.spec_from_file_location("bench_tiny_clip", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    if response.status_code >= 300:
        raise RuntimeError(f"{path}: {response.status_code} {response.text}")
    return response.json()


def _plant(client: TestClient, tiny: ModuleType, user: str, images: bool
           ) -> dict[str, tuple[str, str]]:
    """The labelled set for ``user``: {memory id: (kind, colour)}."""
    labels: dict[str, tuple[str, str]] = {}
    notes = ["my {} umbrella is in the car", "we painted the fence {} last summer",
             "she always wears {} on Fridays"]
    for n, colour in enumerate(tiny.COLOURS):
        for i in range(PER_COLOUR):
            made = _post(client, "/v1/memories", {"user_id": user,
                                                  "text": notes[i].format(colour)})
            labels[made["id"]] = ("text", colour)
            if images:
                made = _post(client, "/v1/memories", {
                    "user_id": user, "image": _b64(tiny.picture(colour, seed=n * 10 + i))})
                labels[made["id"]] = ("image", colour)
    items = [{"user_id": user, "text": t} for t in sentences(40, seed=5)]
    _post(client, "/v1/memories/batch", {"items": items})
    return labels


def _quality(client: TestClient, tiny: ModuleType, labels: dict[str, tuple[str, str]]
             ) -> dict[str, Any]:
    ways = {"fused": {}, "image_only": {"modality": "image"}, "text_only": {"modality": "text"}}
    out: dict[str, Any] = {}
    for way, extra in ways.items():
        hits = {"image": [], "text": []}
        shares: dict[str, list[float]] = {"image": [], "text": []}
        for colour in tiny.COLOURS:
            for template in range(4):
                found = _post(client, "/v1/memories/search", {
                    "user_id": "labelled", "query": tiny.caption(colour, template),
                    "limit": K, **extra})["results"]
                for kind in ("image", "text"):
                    right = [r for r in found if labels.get(r["id"]) == (kind, colour)]
                    hits[kind].append(bool(right))
                    shares[kind].append(len(right) / K)
        out[way] = {f"{kind}_recall_at_{K}": round(sum(v) / len(v), 3)
                    for kind, v in hits.items()}
        out[way] |= {f"{kind}_precision_at_{K}": round(sum(v) / len(v), 3)
                     for kind, v in shares.items()}
    return out


def _latency(client: TestClient, tiny: ModuleType, rounds: int) -> dict[str, Any]:
    timings: dict[str, list[float]] = {"with_images": [], "without_images": []}
    queries = [tiny.caption(c, t) for c in tiny.COLOURS for t in range(4)]
    for r in range(rounds):
        query = queries[r % len(queries)]
        for user, key in (("labelled", "with_images"), ("texts_only", "without_images")):
            started = time.perf_counter()
            _post(client, "/v1/memories/search", {"user_id": user, "query": query, "limit": 10})
            timings[key].append(time.perf_counter() - started)
    out: dict[str, Any] = {k: percentiles(v) for k, v in timings.items()}
    out["p50_ratio"] = round(out["with_images"]["p50_ms"] / out["without_images"]["p50_ms"], 2)
    return out


def _plant_many(client: TestClient, tiny: ModuleType, user: str, count: int,
                batch: int = 64) -> None:
    """``count`` captionless pictures for ``user``, in batches."""
    for start in range(0, count, batch):
        items = [{"user_id": user, "image": _b64(tiny.picture(
            list(tiny.COLOURS)[n % len(tiny.COLOURS)], seed=1000 + n))}
            for n in range(start, min(count, start + batch))]
        _post(client, "/v1/memories/batch", {"items": items})


def _cache_latency(cached: TestClient, uncached: TestClient, tiny: ModuleType, user: str,
                   rounds: int) -> dict[str, Any]:
    """Text searches of ``user`` through a gateway with the image-vector cache and one
    without, alternating (the first search of each warms its side)."""
    timings: dict[str, list[float]] = {"cache": [], "no_cache": []}
    queries = [tiny.caption(c, t) for c in tiny.COLOURS for t in range(4)]
    for client in (cached, uncached):
        _post(client, "/v1/memories/search", {"user_id": user, "query": "warm", "limit": 10})
    for r in range(rounds):
        query = queries[r % len(queries)]
        order = ((cached, "cache"), (uncached, "no_cache"))
        for client, key in order if r % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            _post(client, "/v1/memories/search", {"user_id": user, "query": query, "limit": 10})
            timings[key].append(time.perf_counter() - started)
    out: dict[str, Any] = {k: percentiles(v) for k, v in timings.items()}
    out["p50_ratio"] = round(out["cache"]["p50_ms"] / out["no_cache"]["p50_ms"], 3)
    for client, key in ((cached, "cache"), (uncached, "no_cache")):
        out[key]["reads"] = _cache_outcomes(client.get("/metrics").text)
    return out


def _cache_outcomes(metrics: str) -> dict[str, float]:
    """The gateway's ``memory_image_cache_total`` by outcome (hit, filled, bypassed)."""
    return {sample.labels["outcome"]: sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples if sample.name == "memory_image_cache_total"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.images",
                                     description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--clip", help="CLIP folder or hub id to export and serve")
    source.add_argument("--tiny", action="store_true", help="build the tests' tiny CLIP")
    parser.add_argument("--rounds", type=int, default=200, help="searches per side")
    parser.add_argument("--many", type=int, default=2000,
                        help="pictures of the user searched with and without the cache")
    parser.add_argument("--out", type=Path, default=ROOT / "loadtest" / "results")
    args = parser.parse_args(argv)
    tiny = _tiny_clip()

    def log(line: str) -> None:
        print(f"bench-images: {line}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        root = Path(tmp)
        model = str(tiny.build(root / "tiny-clip")) if args.tiny else args.clip
        clip_repo = root / "clip-export"
        if export_main(["clip", "--model", model, "--repository", str(clip_repo)]) != 0:
            return 1
        repo = copy_latest_as_v1(root, "embedder")
        for name in ("clip_image", "clip_text"):
            copy_latest_as_v1(root, name, source=clip_repo)
        triton = TritonServer(model_repository=repo,
                              models=("embedder", "clip_image", "clip_text"),
                              http_port=free_port(), grpc_port=free_port(),
                              metrics_port=free_port(), log_file=root / "triton.log")
        with triton:
            settings = Settings(data_dir=root / "data", model_repository=repo,
                                triton_managed=False, triton_grpc_port=triton.grpc_port,
                                triton_http_port=triton.http_port,
                                triton_metrics_port=triton.metrics_port)
            uncached = settings.model_copy(update={"image_cache_mb": 0})
            with TestClient(create_app(settings)) as client, \
                    TestClient(create_app(uncached)) as without_cache:
                log("planting the labelled set")
                labels = _plant(client, tiny, "labelled", images=True)
                _plant(client, tiny, "texts_only", images=False)
                log("measuring quality")
                quality = _quality(client, tiny, labels)
                log(f"measuring latency ({args.rounds} searches per side)")
                latency = _latency(client, tiny, args.rounds)
                log(f"planting {args.many} pictures, then searching with and without the "
                    "image-vector cache")
                _plant_many(client, tiny, "many_pictures", args.many)
                _post(client, "/v1/memories", {"user_id": "many_pictures",
                                               "text": "a note among the pictures"})
                cache = _cache_latency(client, without_cache, tiny, "many_pictures",
                                       args.rounds)
    report = {"benchmark": "images", "clip": "tiny (tests/support/tiny_clip.py)" if args.tiny
              else args.clip, "colours": len(tiny.COLOURS), "per_colour": PER_COLOUR,
              "distractor_texts": 40, "queries": 4 * len(tiny.COLOURS), "k": K,
              "quality": quality, "latency": latency,
              "image_cache": {"pictures": args.many, **cache}}
    write_report(args.out, "images", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
