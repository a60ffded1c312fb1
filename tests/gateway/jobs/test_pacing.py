"""Interactive-first pacing of consolidation jobs: a slice waits while client requests are in
flight (at most the maximum wait), the duty cycle bounds the busy share, niced maths is off
the busy clock, and the admission middleware counts client requests but not background
ones. End to end: a merge job on a real gateway waits for a request in flight, then merges,
and keeps its lease while it waits."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send
from support import settings_for, until, wait_for
from support.jobs import wait_done

from gateway.admission.activity import RequestActivity
from gateway.admission.controller import AdmissionController
from gateway.admission.middleware import Admission
from gateway.app import create_app
from gateway.jobs.pacing import Pacer, write_chunks
from gateway.memory.service import utc_now
from gateway.settings import Settings
from gateway.triton import TritonServer

DEADLINE_S = 30.0  # generous: the machine may be busy


class FakeClock:
    """The pacer's clock, moved by the test: a slice lasts exactly what the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def work(self, seconds: float) -> None:
        self.now += seconds


def test_a_slice_waits_while_a_request_is_in_flight_and_goes_after() -> None:
    async def scenario() -> None:
        activity = RequestActivity()
        pacer = Pacer(activity, max_wait_s=3600)
        activity.enter()
        turn = asyncio.create_task(pacer.turn())
        await until(lambda: activity.waiting == 1, "the pacer to wait")
        assert not turn.done() and pacer.stats.slices == 0
        activity.leave()
        await asyncio.wait_for(turn, DEADLINE_S)
        assert pacer.stats.slices == 1 and activity.waiting == 0

    asyncio.run(scenario())


def test_under_continuous_requests_a_slice_goes_after_the_maximum_wait() -> None:
    async def scenario() -> None:
        activity = RequestActivity()
        pacer = Pacer(activity, max_wait_s=0.05)
        with activity.request():  # never quiet while the job turns
            started = time.monotonic()
            for _ in range(3):
                await asyncio.wait_for(pacer.turn(), DEADLINE_S)
            assert time.monotonic() - started >= 3 * 0.05
        assert pacer.stats.slices == 3 and pacer.stats.yield_s >= 3 * 0.05

    asyncio.run(scenario())


def test_the_duty_cycle_bounds_the_busy_share() -> None:
    """At duty 0.25 the pacer rests three times each slice's length, and really waits it."""

    async def scenario() -> tuple[Pacer, float]:
        clock = FakeClock()
        pacer = Pacer(duty=0.25, clock=clock)
        started = time.monotonic()
        for _ in range(10):
            await pacer.turn()
            clock.work(0.005)  # a slice of work
        await pacer.turn()
        return pacer, time.monotonic() - started

    pacer, waited = asyncio.run(scenario())
    assert pacer.stats.slices == 11
    assert pacer.stats.busy_s == pytest.approx(10 * 0.005)
    assert pacer.stats.rest_s == pytest.approx(3 * pacer.stats.busy_s)  # rest: 3x the slice
    assert pacer.stats.busy_s / (pacer.stats.busy_s + pacer.stats.rest_s) == pytest.approx(0.25)
    assert waited >= pacer.stats.rest_s * 0.99  # the rests were real waits


def test_niced_maths_is_off_the_busy_clock() -> None:
    async def scenario() -> Pacer:
        clock = FakeClock()
        pacer = Pacer(duty=0.5, clock=clock)
        await pacer.turn()
        clock.work(0.01)  # the slice's own work
        await pacer.niced(clock.work, 0.2)  # stands for k-means waiting for a spare core
        pacer.pause()
        return pacer

    pacer = asyncio.run(scenario())
    assert pacer.stats.busy_s == pytest.approx(0.01) and pacer.stats.rest_s == 0


def test_a_paused_pacer_does_not_rest_for_what_was_not_work() -> None:
    async def scenario() -> Pacer:
        clock = FakeClock()
        pacer = Pacer(duty=0.1, clock=clock)
        await pacer.turn()
        pacer.pause()
        clock.work(0.05)  # e.g. the runner's checkpoint: not the job's slice
        await pacer.turn()
        return pacer

    assert asyncio.run(scenario()).stats.rest_s == 0


def test_write_chunks_fit_the_row_budget_and_keep_groups_whole() -> None:
    groups = [[1, 2], [3, 4, 5], [6] * 20, [7, 8]]
    chunks = list(write_chunks(groups, rows=5))
    assert chunks == [[[1, 2], [3, 4, 5]], [[6] * 20], [[7, 8]]]
    assert [g for chunk in chunks for g in chunk] == groups


def test_admission_counts_client_requests_but_not_background_ones() -> None:
    controller = AdmissionController.from_settings(Settings())
    seen: list[int] = []

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(controller.activity.in_flight)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    app = Admission(endpoint, controller)

    async def call(priority: bytes) -> None:
        scope = {"type": "http", "method": "POST", "path": "/v1/memories/search",
                 "headers": [(b"x-priority", priority)], "query_string": b""}

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            pass

        await app(scope, receive, send)

    asyncio.run(call(b"interactive"))
    asyncio.run(call(b"batch"))
    asyncio.run(call(b"background"))
    assert seen == [1, 1, 0] and controller.activity.in_flight == 0


def test_a_merge_job_waits_for_a_request_in_flight_then_merges(triton: TritonServer,
                                                             tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", jobs_max_wait_ms=3_600_000)
    with TestClient(create_app(settings)) as client:
        texts = ["My uncle lives in Toronto.", "my uncle lives in toronto!"]
        added = client.post("/v1/memories/batch", json={"dedup": False, "items": [
            {"user_id": "alice", "text": t} for t in texts]})
        assert added.status_code == 201, added.text
        activity = client.app.state.gateway.admission.activity  # type: ignore[attr-defined]
        assert client.portal is not None
        client.portal.call(activity.enter)  # a request that stays in flight
        job_id = client.post("/v1/jobs", json={"kind": "merge", "user_id": "alice"}).json()["id"]
        wait_for(lambda: client.portal.call(lambda: activity.waiting) > 0,
                 "the job to wait for the request", DEADLINE_S, poll_s=0.01)
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "running" and job["progress"].get("users_done", 0) == 0
        listed = client.get("/v1/memories", params={"user_id": "alice"}).json()["results"]
        assert len(listed) == 2  # nothing merged while the request is in flight
        client.portal.call(activity.leave)
        job = wait_done(client, job_id)
        assert job["status"] == "done" and job["progress"]["merged"] == 1, job
        listed = client.get("/v1/memories", params={"user_id": "alice"}).json()["results"]
        assert len(listed) == 1


def test_a_user_whose_paced_work_lasts_keeps_the_job_lease(triton: TritonServer,
                                                          tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", jobs_max_wait_ms=3_600_000,
                            jobs_lease_s=0.3)
    with TestClient(create_app(settings)) as client:
        added = client.post("/v1/memories", json={"user_id": "alice", "text": "a fact"})
        assert added.status_code == 201, added.text
        state = client.app.state.gateway  # type: ignore[attr-defined]
        assert client.portal is not None
        client.portal.call(state.admission.activity.enter)  # the job's user stays blocked
        job_id = client.post("/v1/jobs", json={"kind": "merge", "user_id": "alice"}).json()["id"]
        leases: set[str] = set()

        def renewed_twice() -> bool:  # while the user's work waits
            job = client.portal.call(state.jobs.jobs.get_job, job_id)
            assert job.status in ("queued", "running"), job
            if job.status == "running":
                leases.add(job.lease_until)
                assert client.portal.call(state.jobs.jobs.claim_job, utc_now(), utc_now()) is None
            return len(leases) >= 3

        wait_for(renewed_twice, "the job lease to be renewed twice", DEADLINE_S, poll_s=0.01)
        client.portal.call(state.admission.activity.leave)
        assert wait_done(client, job_id)["status"] == "done"
