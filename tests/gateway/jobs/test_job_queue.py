"""Job queue limits and retention over HTTP on the real gateway (issue 19, finding 6): an equal
pending job is returned instead of a second one, a tenant's pending jobs are capped (429 with
Retry-After), and the scheduled prune drops finished jobs, finished ingest events and the
history of long-deleted memories, past their retention, never a live memory's history."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import memory, settings_for, wait_for
from support.jobs import wait_done

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.settings import Settings
from gateway.store.sqlite.store import SQLiteStore
from gateway.triton import TritonServer

NOW = "2099-01-01T00:00:00.000000Z"
LEASE = "2099-01-01T00:00:00.000000Z"  # a claim by a process that is gone: held far ahead
OLD, RECENT = "2020-01-01T00:00:00.000000Z", "2099-01-01T00:00:00.000000Z"
MAX_PENDING = 3


@dataclass
class Gateway:
    client: TestClient
    keys: dict[str, str]
    settings: Settings

    def call(self, who: str, method: str, path: str, **kwargs: object):
        return self.client.request(method, path, **kwargs,  # type: ignore[arg-type]
                                   headers={"Authorization": f"Bearer {self.keys[who]}"})


async def _held_jobs(settings: Settings, jobs: list[tuple[str, str, str | None, str]]) -> None:
    """Jobs claimed by a runner that is gone, their leases far ahead: they stay pending."""
    store = SQLiteStore(settings.db_path)
    await store.open()
    try:
        for job_id, kind, user, tenant in jobs:
            await store.create_job(job_id, kind, user, NOW, tenant=tenant)
            claimed = await store.claim_job(NOW, LEASE)
            assert claimed is not None and claimed.id == job_id
    finally:
        await store.close()


def _gateway(settings: Settings) -> tuple[TestClient, dict[str, str]]:
    with KeyStore(settings.keys_path) as store:
        keys = {"acme": store.create("acme", KeyScope.WRITE)[0].secret_key,
                "globex": store.create("globex", KeyScope.WRITE)[0].secret_key,
                "ops": store.create("ops", KeyScope.OPERATOR)[0].secret_key}
    return TestClient(create_app(settings)), keys


@pytest.fixture
def held(triton: TritonServer, tmp_path: Path) -> Iterator[Gateway]:
    """A gateway whose acme tenant has one pending merge for alice (claimed, lease held)."""
    settings = settings_for(triton, tmp_path / "data", auth="required",
                            jobs_max_pending=MAX_PENDING)
    asyncio.run(_held_jobs(settings, [
        ("01934f4e-0000-7000-8000-0000000000a1", "merge", "acme\x1falice", "acme")]))
    client, keys = _gateway(settings)
    with client:
        yield Gateway(client, keys, settings)


def test_an_equal_pending_job_is_returned_not_queued_again(held: Gateway) -> None:
    again = held.call("acme", "POST", "/v1/jobs", json={"kind": "merge", "user_id": "alice"})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == "01934f4e-0000-7000-8000-0000000000a1"
    assert again.json()["status"] == "running" and again.json()["user_id"] == "alice"
    other_kind = held.call("acme", "POST", "/v1/jobs", json={"kind": "expire",
                                                             "user_id": "alice"})
    assert other_kind.status_code == 202
    other_tenant = held.call("globex", "POST", "/v1/jobs", json={"kind": "merge",
                                                                 "user_id": "alice"})
    assert other_tenant.status_code == 202  # globex's alice is another user


def test_a_tenants_pending_jobs_are_capped(held: Gateway) -> None:
    asyncio.run(_held_jobs(held.settings, [
        (f"01934f4e-0000-7000-8000-0000000000b{i}", "merge", f"acme\x1fu{i}", "acme")
        for i in range(MAX_PENDING - 1)]))
    refused = held.call("acme", "POST", "/v1/jobs", json={"kind": "merge", "user_id": "carol"})
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert "pending" in refused.json()["detail"]
    ids = [j["id"] for j in held.call("ops", "GET", "/v1/jobs").json()]
    assert len(ids) == MAX_PENDING  # nothing was queued
    # an equal job is still answered (it adds nothing), and other tenants are not held back
    assert held.call("acme", "POST", "/v1/jobs",
                     json={"kind": "merge", "user_id": "alice"}).status_code == 200
    assert held.call("globex", "POST", "/v1/jobs",
                     json={"kind": "merge", "user_id": "bob"}).status_code == 202
    assert held.call("ops", "POST", "/v1/jobs", json={"kind": "expire"}).status_code == 202


async def _aged_rows(settings: Settings) -> dict[str, str]:
    """Finished and pending work, deleted and live memories, old and recent."""
    store = SQLiteStore(settings.db_path)
    await store.open()
    try:
        live, gone_old, gone_recent = (memory("alice", "kept"), memory("alice", "old"),
                                       memory("alice", "recent"))
        await store.insert_many([live, gone_old, gone_recent])
        await store.delete(gone_old.memory.id, OLD)
        await store.delete(gone_recent.memory.id, RECENT)
        for job_id, at in (("job-old", OLD), ("job-recent", RECENT)):
            await store.create_job(job_id, "merge", "alice", at)
            claimed = await store.claim_job(at, at)
            assert claimed is not None
            await store.finish_job(claimed, "done", {}, at)
        await store.create_job("job-queued", "expire", "bob", OLD)
        for event_id, status, at in (("event-old", "SUCCEEDED", OLD),
                                     ("event-recent", "FAILED", RECENT),
                                     ("event-pending", "PENDING", OLD)):
            await store.create_event(event_id, "alice", {"text": "x"}, at)
            if status != "PENDING":
                await store.save_event(event_id, status, at)  # type: ignore[arg-type]
        return {"live": live.memory.id, "gone_old": gone_old.memory.id,
                "gone_recent": gone_recent.memory.id}
    finally:
        await store.close()


async def _remaining(settings: Settings, ids: dict[str, str]) -> dict[str, object]:
    store = SQLiteStore(settings.db_path)
    await store.open()
    try:
        return {
            "jobs": {j for j in ("job-old", "job-recent", "job-queued")
                     if await store.get_job(j) is not None},
            "events": {e for e in ("event-old", "event-recent", "event-pending")
                       if await store.get_event(e) is not None},
            "history": {name for name, memory_id in ids.items()
                        if await store.history(memory_id)},
        }
    finally:
        await store.close()


def test_the_scheduled_prune_keeps_what_retention_keeps(triton: TritonServer,
                                                        tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", retention_jobs_days=30,
                            retention_events_days=30, retention_history_days=30,
                            prune_interval_s=0.2)
    ids = asyncio.run(_aged_rows(settings))
    with TestClient(create_app(settings)) as client:
        def first_prune() -> dict | None:
            done = [j for j in client.get("/v1/jobs", params={"limit": 100}).json()
                    if j["kind"] == "prune" and j["status"] == "done"]
            return done[-1] if done else None  # the oldest: the one that found the old rows

        pruned = wait_for(first_prune, "a scheduled prune")
        assert pruned["tenant"] is None
        assert pruned["progress"] == pruned["progress"] | {"jobs": 1, "events": 1, "history": 2}
    left = asyncio.run(_remaining(settings, ids))
    assert left["jobs"] == {"job-recent", "job-queued"}  # queued: never pruned
    assert left["events"] == {"event-recent", "event-pending"}
    assert left["history"] == {"live", "gone_recent"}  # a live memory keeps its history


def test_retention_zero_keeps_everything(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", retention_jobs_days=0,
                            retention_events_days=0, retention_history_days=0)
    ids = asyncio.run(_aged_rows(settings))
    with TestClient(create_app(settings)) as client:
        job = wait_done(client, client.post("/v1/jobs", json={"kind": "prune"}).json()["id"])
        assert (job["progress"]["jobs"], job["progress"]["events"],
                job["progress"]["history"]) == (0, 0, 0)
    left = asyncio.run(_remaining(settings, ids))
    assert left["history"] == {"live", "gone_old", "gone_recent"}
    assert left["jobs"] == {"job-old", "job-recent", "job-queued"}
