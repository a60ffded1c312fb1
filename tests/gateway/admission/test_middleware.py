"""The Admission middleware on a tiny in-process app: shedding, headers, deadline scope."""

from __future__ import annotations

import asyncio
import time

import httpx
from fastapi import FastAPI

from gateway.admission.controller import AdmissionController
from gateway.admission.limiter import ClassLimiter
from gateway.admission.middleware import Admission, route_class
from gateway.deadline import current_deadline
from gateway.metrics import Metrics

WORK_S = 0.2


def tiny_app(*, limit: int = 2, queue: int = 2, enabled: bool = True,
             max_wait_s: float = 1.0) -> tuple[FastAPI, Metrics]:
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
        await asyncio.sleep(WORK_S)
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
    app, metrics = tiny_app(limit=2, queue=2)
    results = asyncio.run(_burst(app, 10))
    admitted = [r for r in results if r[0] == 200]
    shed = [r for r in results if r[0] == 429]
    assert len(admitted) == 4 and len(shed) == 6
    for _, seconds, response in shed:
        assert response.headers["retry-after"] == "1"
        assert "retry later" in response.json()["detail"]
        assert seconds < WORK_S / 2  # refused at once, not after queueing behind the wall
    # Two ran at once, two waited one turn: nobody waited past two rounds of work.
    assert max(seconds for _, seconds, _ in admitted) < 2 * WORK_S + 0.15
    assert metrics.registry.get_sample_value(
        "memory_admission_shed_total", {"route_class": "search", "reason": "queue_full"}) == 6


def test_without_admission_control_everything_waits() -> None:
    app, metrics = tiny_app(enabled=False)
    results = asyncio.run(_burst(app, 10))
    assert [r[0] for r in results] == [200] * 10
    assert metrics.registry.get_sample_value(
        "memory_admission_shed_total", {"route_class": "search", "reason": "queue_full"}) is None


def test_deadline_header_reaches_the_endpoint_and_bounds_the_queue() -> None:
    app, metrics = tiny_app(limit=1, queue=4)
    results = asyncio.run(_burst(app, 3, headers={"X-Deadline-Ms": "300"}))
    statuses = sorted(r[0] for r in results)
    # The first runs (0.2 s of its 0.3 s budget left to spare); the second would start at
    # 0.2 s and may run; the third could only start at 0.4 s, past its deadline: shed at 0.3 s.
    assert statuses.count(429) >= 1 and statuses[0] == 200
    first = min((r for r in results if r[0] == 200), key=lambda r: r[1])
    assert 0 < first[2].json()["remaining"] < 0.3 - WORK_S + 0.05
    assert all(r[1] < 0.3 + 0.1 for r in results if r[0] == 429)
    assert metrics.registry.get_sample_value(
        "memory_deadline_drops_total", {"stage": "queue"}) >= 1


def test_route_default_deadline_applies_without_a_header() -> None:
    app, _ = tiny_app()
    [(status, _, response)] = asyncio.run(_burst(app, 1))
    assert status == 200 and 1.5 < response.json()["remaining"] < 2.0


def test_bad_headers_are_422_naming_the_header() -> None:
    app, _ = tiny_app()
    for headers, name in [({"X-Priority": "urgent"}, "x-priority"),
                          ({"X-Deadline-Ms": "soon"}, "x-deadline-ms"),
                          ({"X-Deadline-Ms": "0"}, "x-deadline-ms")]:
        [(status, _, response)] = asyncio.run(_burst(app, 1, headers=headers))
        assert status == 422
        assert response.json()["detail"][0]["loc"] == ["header", name]


def test_health_is_never_shed() -> None:
    app, _ = tiny_app(limit=1, queue=0)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            busy = [asyncio.create_task(client.post("/v1/memories/search")) for _ in range(3)]
            await asyncio.sleep(0.02)
            health = await client.get("/healthz")
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
