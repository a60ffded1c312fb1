"""``make bench-ingest``: batch ingest against raw Triton embedding, and where the rest goes.

For each embedder profile (``fp32``: the exported model; ``int8``: per-channel dynamic int8,
exported on the spot with ``python -m export embedder --quantize int8``), on its own Triton:

(a) raw Triton: the texts embedded straight through ``tritonclient`` (no gateway code), in
    requests of ``--batch`` texts with ``--concurrency`` in flight; run before and after (b),
    and the mean taken, so drift on a shared machine hits both sides;
(b) ingest: the same texts through ``POST /v1/memories/batch`` of a gateway process (same
    batch size and concurrency, admission control off): memories/s and its ratio to (a);
(c) breakdown (fp32 only): the same ingest in-process over ASGI, one request at a time, with
    wall time summed for the Triton calls, all SQLite work (``Store.run``) and the index (adds
    and duplicate look-ups); the remainder is the gateway's own work on the event loop
    (validation, normalising, duplicate checks, building memories and responses), and cProfile
    lists the event-loop functions that cost most.

``--lexical`` measures instead what the keyword index costs at ingest: two gateways on one
Triton, ``MEMORY_LEXICAL_INDEX`` on and off (each on a fresh store), get the same batches in
turn, one request at a time and the order flipped every batch, so load drift on a shared
machine hits both; as ``text`` items and as ``messages`` conversations (whose neighbours are
indexed as context too); reported: memories/s per side (batch time summed) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import io
import os
import platform
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc.aio as grpcclient

from gateway.settings import Settings
from gateway.triton import TritonServer
from loadtest.bench.report_file import write_report
from loadtest.corpus import sentences
from loadtest.paths import RESULTS
from loadtest.stack import free_port, gateway_process

GATEWAY_ENV = {"MEMORY_ADMISSION_ENABLED": "false"}
PROFILE_TOP = 15


def log(message: str) -> None:
    print(f"[bench-ingest] {message}", file=sys.stderr, flush=True)


def chunks(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


async def _in_flight(calls: list[Callable[[], Awaitable[object]]], concurrency: int) -> float:
    """Run the calls with ``concurrency`` in flight; wall seconds."""
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(one(c) for c in calls))
    return time.perf_counter() - started


async def raw_triton(triton: TritonServer, texts: list[str], batch: int,
                     concurrency: int) -> float:
    """Texts per second embedded by Triton's ``embedder``, no gateway code involved."""
    client = grpcclient.InferenceServerClient(triton.grpc_url)

    async def embed(part: list[str]) -> None:
        data = grpcclient.InferInput("TEXT", [len(part), 1], "BYTES")
        data.set_data_from_numpy(np.array([[t.encode()] for t in part], dtype=object))
        result = await client.infer("embedder", [data], outputs=[
            grpcclient.InferRequestedOutput("EMBEDDING")])
        assert result.as_numpy("EMBEDDING").shape[0] == len(part)  # type: ignore[union-attr]

    try:
        await embed(texts[:batch])  # warm-up
        seconds = await _in_flight([functools.partial(embed, p) for p in chunks(texts, batch)],
                                   concurrency)
    finally:
        await client.close()
    return len(texts) / seconds


CONVERSATION_TURNS = 10  # messages per item when ingesting as conversations
SPEAKERS = ("Ana", "Ben")


def as_items(part: list[str], user: str, shape: str) -> list[dict]:
    """A batch as ``text`` items, or as ``messages`` items of CONVERSATION_TURNS turns."""
    if shape == "texts":
        return [{"user_id": user, "text": t, "metadata": {"n": i}} for i, t in enumerate(part)]
    return [{"user_id": user, "messages": [
        {"role": "user", "name": SPEAKERS[j % 2], "content": t}
        for j, t in enumerate(part[start : start + CONVERSATION_TURNS])]}
        for start in range(0, len(part), CONVERSATION_TURNS)]


async def gateway_ingest(url: str, texts: list[str], batch: int, concurrency: int,
                         shape: str = "texts") -> float:
    async with httpx.AsyncClient(base_url=url, timeout=300) as http:

        async def post(part: list[str], user: str) -> None:
            items = as_items(part, user, shape)
            (await http.post("/v1/memories/batch", json={"items": items})).raise_for_status()

        await post(texts[:batch], "warm-up")
        parts = chunks(texts, batch)
        seconds = await _in_flight(
            [functools.partial(post, p, f"u{i % 10}") for i, p in enumerate(parts)], concurrency)
    return len(texts) / seconds


def timed(totals: dict[str, float], key: str, func: Any) -> Any:
    """``func`` (sync or async) with its wall time added to ``totals[key]``."""
    if asyncio.iscoroutinefunction(func):
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await func(*args, **kwargs)
            finally:
                totals[key] += time.perf_counter() - started
        return async_wrapper

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - started
    return wrapper


async def breakdown(triton: TritonServer, work: Path, texts: list[str], batch: int) -> dict:
    """One batch at a time in-process, so the parts add up to the request time."""
    from gateway.app import create_app

    settings = Settings(data_dir=work / "breakdown", triton_managed=False,
                        triton_grpc_port=triton.grpc_port, triton_http_port=triton.http_port,
                        model_repository=triton.model_repository, admission_enabled=False)
    app = create_app(settings)
    totals = dict.fromkeys(("triton", "sqlite", "index"), 0.0)
    async with app.router.lifespan_context(app):
        service = app.state.gateway.service
        service.embedder.embed = timed(totals, "triton", service.embedder.embed)
        service.store.run = timed(totals, "sqlite", service.store.run)  # all SQLite work
        for method in ("add", "search_batch"):  # writes, and the duplicate look-ups
            setattr(service.index, method, timed(totals, "index", getattr(service.index, method)))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:

            async def post(part: list[str]) -> None:
                items = [{"user_id": "u", "text": t, "metadata": {"n": i}}
                         for i, t in enumerate(part)]
                response = await http.post("/v1/memories/batch", json={"items": items})
                response.raise_for_status()

            await post(texts[:batch])
            totals.update(dict.fromkeys(totals, 0.0))
            profile = cProfile.Profile()
            started = time.perf_counter()
            profile.enable()
            for part in chunks(texts, batch):
                await post(part)
            profile.disable()
            seconds = time.perf_counter() - started
    gateway = seconds - sum(totals.values())
    shares = {k: round(v / seconds, 3) for k, v in totals.items()} | {
        "gateway_rest": round(gateway / seconds, 3)}
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:PROFILE_TOP]  # type: ignore[attr-defined]
    top = [f"{Path(f).name}:{line}({name}) {own:.3f}s own, {calls} calls"
           for (f, line, name), (_, calls, own, _, _) in rows]
    return {"memories": len(texts), "batch": batch, "seconds": round(seconds, 3),
            "memories_per_s": round(len(texts) / seconds, 1), "share_of_wall_time": shares,
            "event_loop_top_own_time": top}


def profile_repository(name: str, work: Path) -> Path:
    """A scratch repository whose ``embedder`` version 1 is the profile's model."""
    from loadtest.repository import copy_latest_as_v1

    if name == "fp32":
        return copy_latest_as_v1(work / name)
    log("exporting the int8 embedder (per-channel dynamic quantisation) ...")
    repo = work / name / "repository"
    subprocess.run([sys.executable, "-m", "export", "embedder", "--quantize", "int8",
                    "--repository", str(repo)], check=True, capture_output=True)
    return repo


def bench_profile(name: str, work: Path, texts: list[str], args: Any) -> dict:
    repo = profile_repository(name, work)
    result: dict[str, Any] = {}
    with TritonServer(model_repository=repo, http_port=free_port(), grpc_port=free_port(),
                      metrics_port=free_port(), log_file=work / name / "triton.log") as triton:
        log(f"{name}: raw Triton, {len(texts)} texts ...")
        first = asyncio.run(raw_triton(triton, texts, args.batch, args.concurrency))
        env = GATEWAY_ENV | {"MEMORY_MODEL_REPOSITORY": str(repo)}
        with gateway_process(triton, work / name / "data", work / name, env=env) as url:
            log(f"{name}: gateway ingest ...")
            ingest = asyncio.run(gateway_ingest(url, texts, args.batch, args.concurrency))
        log(f"{name}: raw Triton again ...")
        second = asyncio.run(raw_triton(triton, texts, args.batch, args.concurrency))
        triton_rate = (first + second) / 2
        result = {
            "raw_triton_texts_per_s": [round(first, 1), round(second, 1)],
            "gateway_memories_per_s": round(ingest, 1),
            "ratio_to_raw_triton": round(ingest / triton_rate, 3),
        }
        if name == "fp32" and args.breakdown:
            log(f"{name}: in-process breakdown ...")
            result["breakdown"] = asyncio.run(breakdown(triton, work / name, texts, args.batch))
    return result


async def interleaved(urls: dict[str, str], texts: list[str], batch: int,
                      shape: str) -> dict[str, float]:
    """Memories/s per gateway, posting the same batches to each in turn (the order flipped
    every batch), one request at a time: load drift on a shared machine hits every side."""
    seconds = dict.fromkeys(urls, 0.0)
    async with httpx.AsyncClient(timeout=300) as http:

        async def post(url: str, part: list[str], user: str) -> float:
            started = time.perf_counter()
            response = await http.post(f"{url}/v1/memories/batch",
                                       json={"items": as_items(part, user, shape)})
            response.raise_for_status()
            return time.perf_counter() - started

        for url in urls.values():
            await post(url, texts[:batch], "warm-up")
        sides = list(urls)
        for number, part in enumerate(chunks(texts, batch)):
            for side in sides if number % 2 == 0 else sides[::-1]:
                seconds[side] += await post(urls[side], part, f"u{number % 10}")
    return {side: len(texts) / spent for side, spent in seconds.items()}


def lexical_cost(work: Path, texts: list[str], args: Any) -> dict:
    """Ingest rate with the lexical index on and off, side by side (see the module doc)."""
    from loadtest.repository import copy_latest_as_v1

    repo = copy_latest_as_v1(work / "lexical")
    out: dict[str, Any] = {}
    with TritonServer(model_repository=repo, http_port=free_port(), grpc_port=free_port(),
                      metrics_port=free_port(), log_file=work / "lexical" / "triton.log") as triton:
        for shape in ("texts", "messages"):
            with contextlib.ExitStack() as stack:
                urls = {}
                for side in ("on", "off"):
                    env = GATEWAY_ENV | {"MEMORY_MODEL_REPOSITORY": str(repo),
                                         "MEMORY_LEXICAL_INDEX": str(side == "on").lower()}
                    run_dir = work / "lexical" / f"{shape}-{side}"
                    urls[side] = stack.enter_context(
                        gateway_process(triton, run_dir / "data", run_dir, env=env))
                rates = asyncio.run(interleaved(urls, texts, args.batch, shape))
            log(f"lexical index, {shape}: on {rates['on']:.1f}, off {rates['off']:.1f} "
                f"memories/s")
            out[shape] = {"memories_per_s_on": round(rates["on"], 1),
                          "memories_per_s_off": round(rates["off"], 1),
                          "ratio_on_to_off": round(rates["on"] / rates["off"], 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.ingest", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memories", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100, help="texts per request")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight")
    parser.add_argument("--profiles", default="fp32,int8", help="comma-separated: fp32,int8")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false")
    parser.add_argument("--lexical", action="store_true",
                        help="measure ingest with the lexical index on vs off instead")
    parser.add_argument("--work", type=Path, help="keep logs and data here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    texts = sentences(args.memories, seed=2)
    report: dict[str, Any] = {
        "benchmark": "ingest", "started_at": datetime.now(UTC).isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "setup": {"memories": args.memories, "batch": args.batch,
                  "concurrency": args.concurrency, "gateway_env": GATEWAY_ENV},
    }
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = args.work or Path(tmp)
        if args.lexical:
            report["setup"]["concurrency"] = 1  # one request at a time, the sides in turn
            report["lexical_index"] = lexical_cost(work, texts, args)
            write_report(args.out, "ingest-lexical", report, log)
            return 0
        for name in args.profiles.split(","):
            report[name] = bench_profile(name, work, texts, args)
    write_report(args.out, "ingest", report, log)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
