"""``make bench-replica-scaling``: search throughput of two gateway replicas, pinned to one core
each, against one replica pinned to one core, on one PostgreSQL store.

Searches carry client vectors, so Triton is out of the way and what scales is the gateway
(HTTP, admission, the in-process index, reading the hits' rows from PostgreSQL). The load
comes from another process (aiohttp, keep-alive connections), which sends each user's
searches to one replica by the same hash the proxy uses for affinity; with ``--proxy`` the two
replicas are also measured through the shipped haproxy config. On a machine with as many
cores as replicas, the load generator and PostgreSQL share those cores with the replicas: the
report says so, with the load average, and that is the first thing to read when the ratio
falls short.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from loadtest import cpu_share, wrk
from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.paths import RESULTS
from loadtest.stack import gateway_process, triton_server

DIM = 384


def log(message: str) -> None:
    print(f"[bench-replica-scaling] {message}", file=sys.stderr, flush=True)


def unit_vectors(count: int, seed: int) -> list[list[float]]:
    block = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    return (block / np.linalg.norm(block, axis=1, keepdims=True)).tolist()


def users(count: int) -> list[str]:
    return [f"user-{i:04d}" for i in range(count)]


def replica_of(user: str, replicas: int) -> int:
    """A stable hash of the user id, as the proxy's affinity does (per-user, not per-request)."""
    return int.from_bytes(hashlib.blake2b(user.encode(), digest_size=8).digest(), "big") % replicas


def seed(url: str, names: list[str], per_user: int) -> None:
    with httpx.Client(base_url=url, timeout=120) as http:
        for n, user in enumerate(names):
            items = [{"user_id": user, "text": f"{user} memory {i}", "embedding": vector}
                     for i, vector in enumerate(unit_vectors(per_user, seed=n))]
            http.post("/v1/memories/batch", json={"items": items, "dedup": False}
                      ).raise_for_status()


def load(targets: list[str], names: list[str], clients: int, seconds: float,
         out: Any) -> None:
    """In its own process: ``clients`` keep-alive searchers for ``seconds``; user ``u`` goes
    to ``targets[replica_of(u)]`` (one target: all to it)."""
    out.put(asyncio.run(_load(targets, names, clients, seconds)))


async def _load(targets: list[str], names: list[str], clients: int,
                seconds: float) -> dict[str, Any]:
    import aiohttp

    queries = unit_vectors(64, seed=12345)
    latencies: list[float] = []
    failures = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        stop_at = time.perf_counter() + seconds

        async def client(offset: int) -> None:
            nonlocal failures
            i = offset
            while time.perf_counter() < stop_at:
                user = names[i % len(names)]
                target = targets[replica_of(user, len(targets))]
                body = {"user_id": user, "embedding": queries[i % len(queries)], "limit": 10}
                started = time.perf_counter()
                async with http.post(f"{target}/v1/memories/search", json=body,
                                     headers={"X-Memory-User": user}) as response:
                    ok = response.status == 200 and len((await response.json())["results"]) == 10
                latencies.append(time.perf_counter() - started)
                failures += not ok
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(client(c) for c in range(clients)))
        elapsed = time.perf_counter() - started
    return {"searches": len(latencies), "failures": failures,
            "searches_per_s": round(len(latencies) / elapsed, 1)} | percentiles(latencies)


def load_wrk(targets: list[str], names: list[str], clients: int,
             seconds: float) -> dict[str, Any]:
    """Two wrk processes, each posting the searches of the users one replica owns (by
    ``replica_of``) to ``targets[that replica]`` (one target: both to it), ``clients / 2``
    connections each. p50/p99: the worse of the two processes'."""
    queries = unit_vectors(16, seed=12345)
    groups: list[list[str]] = [[], []]
    for user in names:
        groups[replica_of(user, 2)].append(user)
    jobs = [(targets[replica_of(group[0], len(targets))], "/v1/memories/search",
             [{"user_id": user, "embedding": query, "limit": 10}
              for query in queries for user in group])
            for group in groups if group]
    results = wrk.run_many(jobs, max(1, clients // len(jobs)), seconds)
    for result in results:
        if result.non_2xx or result.errors:
            log(f"wrk reported failures:\n{result.summary}")
    return {"generator": "wrk", "searches": sum(r.requests for r in results),
            "failures": sum(r.non_2xx + r.errors for r in results),
            "searches_per_s": round(sum(r.requests_per_s for r in results), 1),
            "p50_ms": max(r.p50_ms for r in results), "p99_ms": max(r.p99_ms for r in results)}


def measure(name: str, targets: list[str], names: list[str], args: argparse.Namespace
            ) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    cpu_before, started = cpu_share.Snapshot.take(), time.perf_counter()
    if args.generator == "wrk":
        result = load_wrk(targets, names, args.clients, args.seconds)
    else:
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        worker = context.Process(target=load,
                                 args=(targets, names, args.clients, args.seconds, out))
        worker.start()
        result = out.get() | {"generator": "aiohttp"}
        worker.join()
    result["cpu_seconds"] = cpu_share.used(cpu_before, cpu_share.Snapshot.take(),
                                           time.perf_counter() - started)
    result |= {"load_average_before": round(load_before, 2),
               "load_average_after": round(os.getloadavg()[0], 2)}
    log(f"{name}: {result['searches_per_s']} searches/s, p50 {result['p50_ms']} ms, "
        f"p99 {result['p99_ms']} ms, {result['failures']} failed; CPU seconds "
        f"{result['cpu_seconds']}")
    return result


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from loadtest.postgres import throwaway_database

    with throwaway_database() as made:
        yield made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--per-user", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--store-url", default=None,
                        help="an empty PostgreSQL database (default: a throwaway server)")
    parser.add_argument("--proxy", action="store_true",
                        help="also measure the two replicas through haproxy")
    parser.add_argument("--generator", choices=("wrk", "aiohttp"),
                        default="wrk" if wrk.binary() else "aiohttp",
                        help="the load generator: wrk (native, the default where installed) "
                             "or a Python process (aiohttp)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = users(args.users)
    cores = os.cpu_count() or 1
    report: dict[str, Any] = {
        "benchmark": "replica-scaling", "at": datetime.now(UTC).isoformat(),
        "machine": platform.platform(), "cores": cores, "users": args.users,
        "per_user": args.per_user, "clients": args.clients, "seconds": args.seconds,
        "generator": args.generator}
    with tempfile.TemporaryDirectory() as tmp, postgres(args.store_url) as url:
        work = Path(tmp)
        env = {"MEMORY_STORE_URL": url, "MEMORY_ADMISSION_ENABLED": "false"}
        with triton_server(work / "logs") as triton, \
                gateway_process(triton, work / "a", work / "logs", env, cpus="0",
                                log_name="gateway-a.log") as a:
            log(f"seeding {args.users} users x {args.per_user} memories")
            seed(a, names, args.per_user)
            measure("warm-up", [a], names, argparse.Namespace(**vars(args) | {"seconds": 3}))
            report["one_replica"] = measure("one replica (core 0)", [a], names, args)
            with gateway_process(triton, work / "b", work / "logs", env, cpus=f"{1 % cores}",
                                 log_name="gateway-b.log") as b:
                measure("warm-up", [a, b], names,
                        argparse.Namespace(**vars(args) | {"seconds": 3}))
                report["two_replicas"] = measure("two replicas (cores 0 and 1)", [a, b], names,
                                                 args)
                if args.proxy:
                    from loadtest.haproxy import affinity_proxy

                    with affinity_proxy(a, b, work / "logs") as proxy:
                        report["two_replicas_through_proxy"] = measure(
                            "two replicas through haproxy", [proxy], names, args)
    report["throughput_ratio"] = round(report["two_replicas"]["searches_per_s"]
                                       / report["one_replica"]["searches_per_s"], 2)
    report["target"] = ">= 1.7x"
    report["note"] = (f"{cores} cores: the load generator, PostgreSQL and Triton share them "
                      "with the replicas" if cores <= 2 else "")
    log(f"two replicas / one: {report['throughput_ratio']}x")
    write_report(args.out, "replica-scaling", report, log)


if __name__ == "__main__":
    main()
