"""A seeded local stack that can start gateways in several configurations on the same data.

Triton starts once (warm for every run); the population is seeded once into a template data
directory; each run gets a fresh copy of it and its own gateway process, so "with" and
"without admission control" start from identical state in the same benchmark run.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.triton import TritonServer
from loadtest.locust.seed import SeedResult, seed
from loadtest.stack import gateway_process, triton_server

ADMISSION = {"on": "true", "off": "false"}


def gateway_counters(metrics_text: str) -> dict[str, dict[str, float]]:
    """Shed counts by class and reason, and deadline drops, from a /metrics scrape."""
    out: dict[str, dict[str, float]] = {"shed": {}, "deadline_drops": {}}
    for line in metrics_text.splitlines():
        if match := re.match(r'memory_admission_shed_total\{(.*)\} (\S+)', line):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
            out["shed"][f"{labels['route_class']}/{labels['reason']}"] = float(match[2])
        elif match := re.match(r'memory_deadline_drops_total\{stage="(\w+)"\} (\S+)', line):
            out["deadline_drops"][match[1]] = float(match[2])
    return out


@dataclass
class SeededStack:
    triton: TritonServer
    template: Path  # seeded data directory, copied for every run
    seeded: SeedResult | None

    @contextlib.contextmanager
    def gateway(self, run_dir: Path, *, admission: str = "on",
                env: dict[str, str] | None = None) -> Iterator[str]:
        """A gateway on a private copy of the seeded data; ``admission`` is "on" or "off"."""
        data = run_dir / "data"
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(self.template, data)
        settings = {"MEMORY_HOST": "127.0.0.1", "MEMORY_ADMISSION_ENABLED": ADMISSION[admission],
                    "MEMORY_SQLITE_SYNCHRONOUS": "NORMAL"} | (env or {})
        try:
            with gateway_process(self.triton, data, run_dir, env=settings) as url:
                yield url
        finally:
            shutil.rmtree(data, ignore_errors=True)  # results keep figures, not databases


@contextlib.contextmanager
def seeded_stack(work: Path, log_dir: Path, *, users: int, memories: int) -> Iterator[SeededStack]:
    """Triton plus a template data directory holding ``users`` x ``memories`` memories."""
    template = work / "seeded"
    with triton_server(log_dir) as triton:
        result = None
        if users and memories:
            # Seeding is bulk work on an idle stack: no shedding, and time for big batches.
            with gateway_process(triton, template, log_dir / "seeding",
                                 env={"MEMORY_SQLITE_SYNCHRONOUS": "NORMAL",
                                      "MEMORY_ADMISSION_ENABLED": "false",
                                      "MEMORY_INFERENCE_TIMEOUT_S": "300"}) as url:
                result = seed(url, users, memories)
        else:
            template.mkdir(parents=True, exist_ok=True)
        yield SeededStack(triton, template, result)


def scrape(url: str) -> str:
    return httpx.get(f"{url}/metrics", timeout=10).text
