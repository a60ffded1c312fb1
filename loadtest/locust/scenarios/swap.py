"""Swap: mixed load while the embedder model is reloaded in Triton, once, mid-run.

Until the gateway has its own version-activation endpoint, the swap is Triton's explicit
``load`` of the embedder (it re-reads the repository and switches to what it finds there, the
same path a new version takes). ``LOADTEST_TRITON_HTTP`` names Triton's HTTP address
(loopback) and ``LOADTEST_SWAP_AT_S`` when to swap (default 10 s). The swap shows in the stats
as ``swap``; every other request must keep succeeding through it.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request

from locust import User, constant, events, task

from loadtest.locust.scenarios.mixed import MixedUser

TRITON_HTTP = os.environ.get("LOADTEST_TRITON_HTTP", "http://127.0.0.1:8000")
SWAP_AT_S = float(os.environ.get("LOADTEST_SWAP_AT_S", "10"))
MODEL = os.environ.get("LOADTEST_SWAP_MODEL", "embedder")

__all__ = ["MixedUser", "Swapper"]


class Swapper(User):
    """One of it, whatever the user count: waits, swaps once, then idles."""

    fixed_count = 1
    wait_time = constant(1)

    def on_start(self) -> None:
        self.started = time.monotonic()
        self.done = False

    @task
    def swap_once(self) -> None:
        if self.done or time.monotonic() - self.started < SWAP_AT_S:
            return
        self.done = True
        started = time.perf_counter()
        request = urllib.request.Request(
            f"{TRITON_HTTP}/v2/repository/models/{MODEL}/load", data=json.dumps({}).encode(),
            method="POST", headers={"content-type": "application/json"})
        error: Exception | None = None
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                response.read()
        except Exception as exc:  # reported to Locust as the swap's failure, not raised
            error = exc
        events.request.fire(request_type="ADMIN", name="swap",
                            response_time=(time.perf_counter() - started) * 1000,
                            response_length=0, exception=error, context={})
