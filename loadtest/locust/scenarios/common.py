"""What every scenario shares: the base user, realistic payloads, answer checks, a request log.

Configuration comes from the environment that ``loadtest.locust.runner`` sets for the Locust process
(Locust owns the command line):

    LOADTEST_RATE          requests/s per simulated user (Poisson arrivals, default 2):
                           offered load = users x rate while answers come faster than 1/rate
    LOADTEST_SEED_USERS    users the seeding tool filled (ids seed-00000 ...), default 20
    LOADTEST_TIMEOUT_S     client timeout, default 10 (a real client gives up too)
    LOADTEST_REQUEST_LOG   CSV path: one line per request, for exact percentiles per step

Answers are checked, not only status codes (``catch_response=True``), and every failure is
labelled by kind (``429 shed``, ``503 unavailable``, ``timeout`` ...) so the summary can say
how load was refused.
"""

from __future__ import annotations

import atexit
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events
from locust.exception import CatchResponseError

from loadtest.population import memory_text, query_text, seeded_user

RATE = float(os.environ.get("LOADTEST_RATE", "2"))
SEED_USERS = int(os.environ.get("LOADTEST_SEED_USERS", "20"))
TIMEOUT_S = float(os.environ.get("LOADTEST_TIMEOUT_S", "10"))


def poisson_throughput(rate: float) -> Callable[[Any], float]:
    """Locust wait time giving each user Poisson arrivals at ``rate``/s on average.

    Like ``constant_throughput`` it counts from the start of the previous task, so slow answers
    do not lower the offered load (until one takes longer than the gap); unlike it, users do not
    march in step, so the gateway sees the independent arrivals of many real callers, not
    bursts of every user at once.
    """

    def wait_time(user: Any) -> float:
        now = time.monotonic()
        next_at = max(getattr(user, "_next_at", now) + random.expovariate(rate), now)
        user._next_at = next_at
        return next_at - now

    return wait_time


def failure_kind(status: int, error: object | None) -> str:
    """One label per way a request can fail; "ok" when it did not."""
    if error is None:
        return "ok"
    if status == 0:
        name = type(error).__name__.lower()
        return "timeout" if "timeout" in name or "timed out" in str(error) else "connection"
    if status == 429:
        return "429 shed"
    if status == 503:
        return "503 unavailable"
    if status >= 500:
        return f"{status} server error"
    if 200 <= status < 300:
        return "wrong payload"
    return f"{status} client error"


class MemoryUser(FastHttpUser):
    """A caller of the memory API: one tenant, paced at ``RATE`` requests/s."""

    abstract = True
    wait_time = poisson_throughput(RATE)
    network_timeout = TIMEOUT_S
    connection_timeout = TIMEOUT_S
    priority = "interactive"

    def on_start(self) -> None:
        self.rng = random.Random()
        self.tenant = seeded_user(self.rng.randrange(SEED_USERS))
        self.mine: list[str] = []  # ids this user added, for updates and deletes

    def headers(self, priority: str | None = None) -> dict[str, str]:
        return {"X-Tenant-Id": self.tenant, "X-Priority": priority or self.priority}

    def call(self, method: str, path: str, *, name: str, expect: int,
             check: Callable[[Any], bool] | None = None, priority: str | None = None,
             **kwargs: Any) -> Any:
        """Send one request; mark it failed unless the status and the payload are right."""
        with self.client.request(method, path, name=name, catch_response=True,
                                 headers=self.headers(priority), **kwargs) as response:
            if response.status_code != expect:
                response.failure(failure_kind(response.status_code,
                                              response.error or response.status_code))
                return None
            payload = response.json() if response.text else None
            if check is not None and not check(payload):
                response.failure("wrong payload")
                return None
            response.success()
            return payload

    # -- the API calls scenarios combine ---------------------------------------------------------
    def add(self, user_id: str | None = None) -> None:
        body = {"user_id": user_id or self.tenant, "text": memory_text(self.rng),
                "metadata": {"source": "locust", "n": self.rng.randrange(100)}}
        made = self.call("POST", "/v1/memories", name="add", expect=201, json=body,
                         check=lambda m: m["text"] == body["text"] and "id" in m)
        if made:
            self.mine.append(made["id"])
            del self.mine[:-50]

    def add_batch(self, size: int | None = None) -> None:
        size = size or self.rng.randint(10, 50)
        items = [{"user_id": self.tenant, "text": memory_text(self.rng)} for _ in range(size)]
        self.call("POST", "/v1/memories/batch", name="add_batch", expect=201, priority="batch",
                  json={"items": items}, check=lambda b: len(b["results"]) == size)

    def search(self, user_id: str | None = None) -> None:
        body = {"user_id": user_id or seeded_user(self.rng.randrange(SEED_USERS)),
                "query": query_text(self.rng), "limit": 10}
        self.call("POST", "/v1/memories/search", name="search", expect=200, json=body,
                  check=lambda r: 0 < len(r["results"]) <= 10
                  and all(-1.001 <= h["score"] <= 1.001 for h in r["results"]))

    def update(self) -> None:
        if not self.mine:
            self.add()
            return
        memory_id = self.rng.choice(self.mine)
        text = memory_text(self.rng)
        self.call("PATCH", f"/v1/memories/{memory_id}", name="update", expect=200,
                  json={"text": text}, check=lambda m: m["text"] == text)

    def delete(self) -> None:
        if not self.mine:
            self.add()
            return
        memory_id = self.mine.pop(self.rng.randrange(len(self.mine)))
        self.call("DELETE", f"/v1/memories/{memory_id}", name="delete", expect=204)


# -- request log: one CSV line per request (time since start, name, ms, status, kind) ----------
_log_path = os.environ.get("LOADTEST_REQUEST_LOG")
# Open for the whole process (closed at exit), so not a with block.
_log = Path(_log_path).open("a", buffering=1 << 16) if _log_path else None  # noqa: SIM115
_started = time.time()
if _log is not None:
    atexit.register(_log.close)


@events.test_start.add_listener
def _on_test_start(**_: Any) -> None:
    global _started
    _started = time.time()
    if _log is not None:
        _log.write(f"# started {_started:.6f}\n")


@events.request.add_listener
def _on_request(name: str, response_time: float, response: Any = None,
                exception: object | None = None, start_time: float | None = None,
                **_: Any) -> None:
    if _log is None:
        return
    status = int(getattr(response, "status_code", 0) or 0)
    if exception is None:
        kind = "ok"
    elif isinstance(exception, CatchResponseError):  # our own label from MemoryUser.call
        kind = str(exception)
    else:
        kind = failure_kind(status, exception)
    kind = kind.replace(",", ";").replace("\n", " ")[:80]
    at = (start_time or time.time()) - _started
    _log.write(f"{at:.4f},{name},{response_time:.3f},{status},{kind}\n")


@events.test_stop.add_listener
def _on_test_stop(**_: Any) -> None:
    if _log is not None:
        _log.flush()
