"""Seed a gateway with N users x M memories through ``/v1/memories/batch``, with a progress bar.

    python -m loadtest.locust.seed --url http://127.0.0.1:8080 --users 50 --memories 200

Batch adds because they are one Triton request each (the fastest way in); two in flight so
Triton always has the next batch while it embeds one, small enough (100) that a batch of long
texts finishes well within the gateway's inference timeout on a slow CPU. Users are
``seed-00000`` ... (what the scenarios search), texts are
deterministic per user. 429/503 answers are retried after their ``Retry-After``, so seeding
works against a gateway with admission control on. Loopback URLs only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from loadtest.population import seed_items

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def require_loopback(url: str) -> str:
    """Load is only ever aimed at this machine: refuse anything else."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise SystemExit(f"error: {url} is not a loopback address; load tests target "
                         f"127.0.0.1 only")
    return url.rstrip("/")


@dataclass(frozen=True)
class SeedResult:
    users: int
    memories: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.memories / self.seconds if self.seconds else 0.0


async def _post(client: httpx.AsyncClient, items: list[dict]) -> None:
    for _ in range(30):
        # dedup off: a seed stores exactly users x memories rows (its texts may repeat)
        response = await client.post("/v1/memories/batch",
                                     json={"items": items, "dedup": False},
                                     headers={"X-Priority": "batch"})
        if response.status_code in (429, 503):
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            continue
        response.raise_for_status()
        return
    raise RuntimeError("seeding kept being refused (429/503) for 30 tries")


async def seed_async(url: str, users: int, memories: int, *, batch: int = 100,
                     concurrency: int = 2, show_progress: bool = True) -> SeedResult:
    items = [item for user in range(users) for item in seed_items(user, memories)]
    chunks = [items[i:i + batch] for i in range(0, len(items), batch)]
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    async with httpx.AsyncClient(base_url=require_loopback(url), timeout=300) as client:
        with Progress(*columns, disable=not show_progress, transient=False) as progress:
            bar = progress.add_task(f"seeding {users} users x {memories}", total=len(items))

            async def one(chunk: list[dict]) -> None:
                async with gate:
                    await _post(client, chunk)
                progress.advance(bar, len(chunk))

            await asyncio.gather(*(one(c) for c in chunks))
    return SeedResult(users, len(items), time.perf_counter() - started)


def seed(url: str, users: int, memories: int, **kwargs: object) -> SeedResult:
    return asyncio.run(seed_async(url, users, memories, **kwargs))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.locust.seed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--memories", type=int, default=200, help="per user")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args(argv)
    result = seed(args.url, args.users, args.memories, batch=args.batch,
                  concurrency=args.concurrency)
    print(f"seeded {result.memories} memories for {result.users} users in "
          f"{result.seconds:.1f} s ({result.per_second:.0f}/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
