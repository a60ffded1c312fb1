"""The size trigger: passing MEMORY_JOBS_USER_SIZE queues a consolidation job in the
background, once, and never a second while one is pending."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import memory, opened, run, settings_for, wait_for

from gateway.app import create_app
from gateway.jobs.runner import JobRunner
from gateway.jobs.triggers import REARM_SHARE, SizeTrigger, consolidation_kinds
from gateway.triton import TritonServer

THRESHOLD = 6


def add(client: TestClient, user: str, texts: list[str]) -> None:
    response = client.post("/v1/memories/batch", json={"dedup": False, "items": [
        {"user_id": user, "text": t} for t in texts]})
    assert response.status_code == 201, response.text


def jobs_of(client: TestClient, user: str) -> list[dict]:
    return [j for j in client.get("/v1/jobs", params={"limit": 100}).json()
            if j["user_id"] == user]


@pytest.fixture
def sized(triton: TritonServer, tmp_path: Path) -> TestClient:
    settings = settings_for(triton, tmp_path / "data", jobs_user_size=THRESHOLD)
    with TestClient(create_app(settings)) as client:
        yield client


def test_passing_the_size_queues_one_merge_in_the_background(sized: TestClient) -> None:
    trigger: SizeTrigger = sized.app.state.gateway.size_trigger
    add(sized, "alice", ["My uncle lives in Toronto.", "Deploys happen on Tuesdays.",
                         "I like green tea."])
    add(sized, "bob", [f"bob fact number {i}" for i in range(THRESHOLD - 1)])
    wait_for(lambda: trigger.checks >= 2, "the trigger to look at both writes")
    assert jobs_of(sized, "alice") == [] and jobs_of(sized, "bob") == []
    add(sized, "alice", ["my uncle lives in toronto.", "Deploys happen on Tuesdays!",
                         "My aunt lives in Lisbon."])  # six now, two of them duplicates
    kinds = consolidation_kinds()  # merge, and compress where the runner has it
    done = wait_for(lambda: [j for j in jobs_of(sized, "alice") if j["status"] == "done"
                             and len(jobs_of(sized, "alice")) == len(kinds)] or None,
                    "alice's jobs to finish")
    assert sorted(j["kind"] for j in jobs_of(sized, "alice")) == sorted(kinds)
    [merge] = [j for j in done if j["kind"] == "merge"]
    assert merge["progress"]["merged"] == 2
    checks = trigger.checks
    add(sized, "alice", ["Another fact.", "Yet another fact."])  # six stored again
    wait_for(lambda: trigger.checks > checks, "the trigger to look at the new write")
    assert len(jobs_of(sized, "alice")) == len(kinds)  # not grown enough since: no more
    assert jobs_of(sized, "bob") == []


def test_jobs_do_not_pile_up(tmp_path: Path) -> None:
    """With no worker running, queued jobs stay queued: a user noted again gets no second job
    while one is pending, and a job over every user covers everyone."""

    async def scenario() -> None:
        store = await opened(tmp_path / "m.sqlite3")
        runner = JobRunner(None, store, None)  # type: ignore[arg-type]  # submit only
        trigger = SizeTrigger(runner, THRESHOLD)
        await store.insert_many([memory("alice", f"fact {i}") for i in range(THRESHOLD)])
        await store.insert_many([memory("bob", f"fact {i}") for i in range(THRESHOLD - 1)])
        first = await trigger.check(["alice", "bob", "nobody"])
        assert [(j.kind, j.user_id) for j in first] == [(k, "alice")
                                                          for k in consolidation_kinds()]
        grown = THRESHOLD + int(THRESHOLD * REARM_SHARE) + 1
        await store.insert_many([memory("alice", f"more {i}") for i in range(grown)])
        assert await trigger.check(["alice"]) == []  # still queued: not another
        await runner.submit("merge", None)
        await store.insert_many([memory("bob", "the sixth")])
        assert [j.kind for j in await trigger.check(["bob"])] == [
            k for k in consolidation_kinds() if k != "merge"]  # the all-users merge covers bob
        await store.close()

    run(scenario())


def test_zero_turns_the_trigger_off(tmp_path: Path) -> None:
    """Threshold 0: the watcher ends at once (the bound turns a hang into a failure) without
    looking at the noted user, and a big user gets no job."""

    async def scenario() -> None:
        store = await opened(tmp_path / "m.sqlite3")
        trigger = SizeTrigger(JobRunner(None, store, None), 0)  # type: ignore[arg-type]
        await store.insert_many([memory("alice", f"fact {i}") for i in range(THRESHOLD * 2)])
        trigger.note(["alice"])
        await asyncio.wait_for(trigger.watch_forever(), timeout=10)  # returns: nothing watched
        assert trigger.checks == 0
        for kind in consolidation_kinds():
            assert not await store.job_pending(kind, "alice")
            assert not await store.job_pending(kind, None)
        await store.close()

    run(scenario())
