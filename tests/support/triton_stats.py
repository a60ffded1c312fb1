"""Triton's per-model statistics (``/v2/models/NAME/stats``), read race-free.

Triton may update a model's counters just after the response reached the client, so a test
that reads them right after a call can see the previous request's numbers. ``quiet`` waits
until the counters stop moving (take the "before" with it); ``settled`` waits until the expected
number of new successful requests is counted and the counters are quiet again (the "after").
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass

from gateway.triton import TritonServer
from support.waiting import wait_for


@dataclass(frozen=True)
class Counts:
    requests: int  # successful inference requests
    inferences: int  # batch rows inferred (a request of 50 pairs counts 50)
    executions: int  # model executions (one may serve several merged requests)
    batch_sizes: dict[int, int]  # executions per batch size

    def __sub__(self, other: Counts) -> Counts:
        sizes = {size: count - other.batch_sizes.get(size, 0)
                 for size, count in self.batch_sizes.items()
                 if count > other.batch_sizes.get(size, 0)}
        return Counts(self.requests - other.requests, self.inferences - other.inferences,
                      self.executions - other.executions, sizes)


def counts(server: TritonServer, model: str) -> Counts:
    with urllib.request.urlopen(f"{server.http_url}/v2/models/{model}/stats", timeout=5) as r:
        stats = json.load(r)["model_stats"][0]
    return Counts(
        requests=int(stats["inference_stats"]["success"]["count"]),
        inferences=int(stats["inference_count"]),
        executions=int(stats["execution_count"]),
        batch_sizes={int(b["batch_size"]): int(b["compute_infer"]["count"])
                     for b in stats["batch_stats"]},
    )


def quiet(server: TritonServer, model: str, timeout_s: float = 5.0) -> Counts:
    """The counters once two reads 100 ms apart agree (earlier requests fully counted)."""
    deadline = time.monotonic() + timeout_s
    last = counts(server, model)
    while True:
        time.sleep(0.1)
        now = counts(server, model)
        if now == last or time.monotonic() > deadline:
            return now
        last = now


def settled(server: TritonServer, model: str, before: Counts, requests: int,
            timeout_s: float = 30.0) -> Counts:
    """Counts since ``before`` once at least ``requests`` new requests are counted and the
    counters stopped moving (a straggler shows up, so "exactly" checks are fair)."""
    wait_for(lambda: (counts(server, model) - before).requests >= requests,
             f"{requests} new {model} request(s) in Triton's statistics", timeout_s)
    return quiet(server, model) - before


def pending(server: TritonServer, model: str) -> int:
    """Requests queued in Triton for ``model`` and not yet executing (a gauge, read live)."""
    url = f"http://{server.host}:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        lines = r.read().decode().splitlines()
    prefix = f'nv_inference_pending_request_count{{model="{model}",'
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in lines if line.startswith(prefix))


def wait_until_busy(server: TritonServer, model: str, timeout_s: float = 30.0) -> None:
    """Block until a request waits in ``model``'s queue: its only instance is busy."""
    wait_for(lambda: pending(server, model) >= 1, f"a queued {model} request", timeout_s,
             poll_s=0.01)
