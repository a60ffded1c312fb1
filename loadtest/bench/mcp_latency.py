"""``make bench-mcp``: an add followed by a search through the MCP server over stdio, beside the
same two calls through the HTTP API, in one run.

Starts Triton and a gateway (``loadtest.stack``), then spawns ``agent-memory mcp --transport
stdio`` as an agent host would and drives it with the MCP SDK's own client. Each pair is
``add_memory`` then ``search_memories`` (new texts each time, so neither hits the query
cache); the HTTP side makes the same two calls with ``agent_memory.AsyncMemoryClient``. Blocks
of the two sides alternate, so both see the same machine load. Target (issue 22): p50 of a
pair over stdio ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agent_memory import AsyncMemoryClient
from mcp import Client, StdioServerParameters

from loadtest.bench.report_file import write_report
from loadtest.bench.timing import percentiles
from loadtest.paths import RESULTS
from loadtest.stack import gateway_process, triton_server

ROOT = Path(__file__).resolve().parents[2]
TARGET_P50_MS = 50.0
WORDS = ("ferry", "violin", "garden", "marathon", "kitchen", "novel", "glacier", "harbour")


def fact(side: str, n: int) -> tuple[str, str]:
    """A memory text and a query that finds it, both new for every pair."""
    a, b = WORDS[n % len(WORDS)], WORDS[(n // len(WORDS)) % len(WORDS)]
    return (f"{side} note {n}: the user likes the {a} and the {b}",
            f"what about the {a} and the {b} ({side} {n})")


async def timed(pairs: int, one: Callable[[int], Awaitable[None]], start: int) -> list[float]:
    samples = []
    for n in range(start, start + pairs):
        began = time.perf_counter()
        await one(n)
        samples.append(time.perf_counter() - began)
    return samples


async def measure(url: str, rounds: int, pairs: int) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable, cwd=str(ROOT),
        args=["-m", "gateway.cli", "mcp", "--transport", "stdio", "--url", url,
              "--user-id", "bench-mcp"],
        env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "client")])})
    mcp_s: list[float] = []
    http_s: list[float] = []
    async with Client(params) as mcp, AsyncMemoryClient(url) as http:

        async def over_mcp(n: int) -> None:
            text, query = fact("mcp", n)
            for tool, arguments in (("add_memory", {"text": text}),
                                    ("search_memories", {"query": query, "limit": 5})):
                result = await mcp.call_tool(tool, arguments)
                if result.is_error:
                    raise RuntimeError(f"{tool}: {result.content}")

        async def over_http(n: int) -> None:
            text, query = fact("http", n)
            await http.add(user_id="bench-http", data=text)
            await http.search(user_id="bench-http", query=query, limit=5)

        await over_mcp(-1)  # warm both paths (the server's imports, the client's pool)
        await over_http(-1)
        for r in range(rounds):
            mcp_s += await timed(pairs, over_mcp, r * pairs)
            http_s += await timed(pairs, over_http, r * pairs)
    stdio, api = percentiles(mcp_s), percentiles(http_s)
    return {"mcp_stdio": stdio | {"pairs": len(mcp_s)}, "http_api": api | {"pairs": len(http_s)},
            "p50_ratio": round(stdio["p50_ms"] / api["p50_ms"], 2),
            "target_p50_ms": TARGET_P50_MS, "target_met": stdio["p50_ms"] <= TARGET_P50_MS}


def table(report: dict[str, Any]) -> str:
    rows = ["| add + search | p50 ms | p95 ms | p99 ms | pairs |", "|---|---:|---:|---:|---:|"]
    for name, key in (("MCP over stdio", "mcp_stdio"), ("HTTP API (Python client)", "http_api")):
        side = report[key]
        rows.append(f"| {name} | {side['p50_ms']} | {side['p95_ms']} | {side['p99_ms']} | "
                    f"{side['pairs']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.mcp_latency",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="alternating blocks per side")
    parser.add_argument("--pairs", type=int, default=25, help="add+search pairs per block")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"benchmark": "mcp", "cpus": os.cpu_count(),
                              "load_average_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as scratch, \
            triton_server(Path(scratch) / "triton") as triton, \
            gateway_process(triton, Path(scratch) / "data", Path(scratch) / "gateway") as url:
        report |= asyncio.run(measure(url, args.rounds, args.pairs))
    report["load_average_end"] = os.getloadavg()[0]
    write_report(args.out, "bench-mcp", report, print)
    print(table(report))
    return 0 if report["target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
