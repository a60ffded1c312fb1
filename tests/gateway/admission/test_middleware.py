"""The Admission middleware on a tiny in-process app: shedding, headers, deadline scope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
from fastapi import FastAPI
from support import until

from gateway.admission.controller import AdmissionController
from gateway.admission.limiter import ClassLimiter
from gateway.admission.middleware import Admission, route_class
from gateway.deadline import current_deadline
from gateway.metrics import Metrics

WORK_S = 0.2


async def slow_work() -> None:
    await asyncio.sleep(WORK_S)


class Wall:
    """Work that holds its admission slot until the test opens the wall; counts how many
    run at once, so a test sees the limit at work without timing anything."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.running = self.started = self.most = 0

    async def __call__(self) -> None:
        self.running += 1
        self.started += 1
        self.most = max(self.most, self.running)
        await self.open.wait()
        self.running -= 1


def tiny_app(*, limit: int = 2, queue: int = 2, enabled: bool = True,
             max_wait_s: float = 1.0, work: Callable[[], Awaitable[None]] = slow_work,
             ) -> tuple[FastAPI, Metrics]:
    app = FastAPI()
    metrics = Metrics()
    controller = AdmissionController(
        {name: ClassLimiter(name, limit=limit, queue_size=queue, max_wait_s=max_wait_s,
                            enabled=enabled) for name in ("ingest", "search", "admin")},
        metrics=metrics, default_deadlines_s={"search": 2.0},
    )

    @app.post("/v1/memories/search")
    async def slow() -> dict[str, float | None]:
        deadline = current_deadline()
        await work()
        return {"remaining": deadline.remaining() if deadline else None}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(Admission, controller=controller)
    return app, metrics


async def _burst(app: FastAPI, count: int, headers: dict[str, str] | None = None
                 ) -> list[tuple[int, float, httpx.Response]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        async def one() -> tuple[int, float, httpx.Response]:
            started = time.perf_counter()
            response = await client.post("/v1/memories/search", headers=headers)
            return response.status_code, time.perf_counter() - started, response

        return await asyncio.gather(*(one() for _ in range(count)))


def test_ten_slow_requests_against_limit_two_queue_two() -> None:
    wall = Wall()
    app, metrics = tiny_app(limit=2, queue=2, work=wall)

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            tasks = [asyncio.create_task(client.post("/v1/memories/search"))
                     for _ in range(10)]
            await until(lambda: sum(t.done() for t in tasks) == 6, "six answers")
            # Refused at once, not after queueing behind the wall: it still stands.
            assert (wall.started, wall.running) == (2, 2)
            early = [t.result() for t in tasks if t.done()]
            wall.open.set()
            return early, [await t for t in tasks]

    early, results = asyncio.run(scenario())
    assert [r.status_code for r in early] == [429] * 6
    assert sorted(r.status_code for r in results) == [200] * 4 + [429] * 6
    for response in early:
        assert response.headers["retry-after"] == "1"
        assert "retry later" in response.json()["detail"]
    # Two ran at once, the two queued ran when they left: never more than the limit.
    assert (wall.started, wall.most, wall.running) == (4, 2, 0)
    assert metrics.registry.get_sample_value(
        "memory_admission_shed_total", {"route_class": "search", "reason": "queue_full"}) == 6


def test_without_admission_control_everything_waits() -> None:
    app, metrics = tiny_app(enabled=False)
    results = asyncio.run(_burst(app, 10))
    assert [r[0] for r in results] == [200] * 10
    assert metrics.registry.get_sample_value(
        "memory_admission_shed_total", {"route_class": "search", "reason": "queue_full"}) is None


def test_deadline_header_reaches_the_endpoint_and_bounds_the_queue() -> None:
    """The first request holds the only slot until both others are answered; they queue with
    a 300 ms budget under an hour's maximum wait, so only their deadline can end the wait."""
    wall = Wall()
    app, metrics = tiny_app(limit=1, queue=4, max_wait_s=3600, work=wall)
    headers = {"X-Deadline-Ms": "300"}

    async def scenario() -> list[tuple[int, float, httpx.Response]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            async def one() -> tuple[int, float, httpx.Response]:
                started = time.perf_counter()
                response = await client.post("/v1/memories/search", headers=headers)
                return response.status_code, time.perf_counter() - started, response

            first = asyncio.create_task(one())
            await until(lambda: wall.running == 1, "the first request to run")
            shed = await asyncio.wait_for(asyncio.gather(one(), one()), 60)
            wall.open.set()
            return [await first, *shed]

    (status, seconds, response), *shed = asyncio.run(scenario())
    assert [r[0] for r in shed] == [429, 429] and wall.started == 1
    # The endpoint saw the header's budget (not the route's 2 s default), less its wait.
    assert status == 200 and 0.3 - seconds <= response.json()["remaining"] < 0.3
    assert metrics.registry.get_sample_value(
        "memory_deadline_drops_total", {"stage": "queue"}) == 2


def test_route_default_deadline_applies_without_a_header() -> None:
    app, _ = tiny_app()
    [(status, seconds, response)] = asyncio.run(_burst(app, 1))
    # Two seconds from arrival, read after the work: bounded by what the request took.
    assert status == 200 and 2.0 - seconds <= response.json()["remaining"] <= 2.0 - WORK_S


def test_bad_headers_are_422_naming_the_header() -> None:
    app, _ = tiny_app()
    for headers, name in [({"X-Priority": "urgent"}, "x-priority"),
                          ({"X-Deadline-Ms": "soon"}, "x-deadline-ms"),
                          ({"X-Deadline-Ms": "0"}, "x-deadline-ms")]:
        [(status, _, response)] = asyncio.run(_burst(app, 1, headers=headers))
        assert status == 422
        assert response.json()["detail"][0]["loc"] == ["header", name]


def test_health_is_never_shed() -> None:
    wall = Wall()
    app, _ = tiny_app(limit=1, queue=0, work=wall)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            busy = [asyncio.create_task(client.post("/v1/memories/search")) for _ in range(3)]
            await until(lambda: wall.running == 1 and sum(t.done() for t in busy) == 2,
                        "one search running, two shed")
            health = await client.get("/healthz")  # while the only slot is taken
            wall.open.set()
            return [health.status_code] + [(await t).status_code for t in busy]

    statuses = asyncio.run(scenario())
    assert statuses[0] == 200 and statuses[1:].count(429) == 2


def test_route_classes() -> None:
    assert route_class("POST", "/v1/memories/search") == "search"
    assert route_class("POST", "/v2/memories/search/") == "search"  # Mem0 1.0.x
    assert route_class("POST", "/v3/memories/search/") == "search"
    assert route_class("POST", "/v1/memories") == "ingest"
    assert route_class("POST", "/v1/memories/batch/") == "ingest"
    assert route_class("PATCH", "/v1/memories/abc") == "ingest"
    assert route_class("GET", "/v1/memories/abc/history") == "admin"
    assert route_class("DELETE", "/v1/memories") == "admin"
    assert route_class("GET", "/metrics") is None
