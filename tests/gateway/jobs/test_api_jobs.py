"""Consolidation jobs through /v1/jobs on the real embedder: merge, idempotence, resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for
from support.jobs import wait_done

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.store.sqlite.store import SQLiteStore
from gateway.triton import TritonServer

FACTS = ["My uncle lives in Toronto.", "I have a meeting with Ben on Monday at 3 pm.",
         "The billing deploy failed because of a full disk."]
REPEATS = ["my uncle lives in toronto.", "My uncle lives in Torotno!",
           "FYI, the billing deploy failed because of a full disk"]
LOOK_ALIKES = ["I have a meeting with Ben on Monday at 6 pm.", "My uncle lives in Lisbon."]


def add_all(client: TestClient, user: str, texts: list[str], **fields: object) -> list[dict]:
    response = client.post("/v1/memories/batch", json={"dedup": False, "items": [
        {"user_id": user, "text": t, **fields} for t in texts]})
    assert response.status_code == 201, response.text
    return response.json()["results"]


def listed(client: TestClient, user: str) -> list[dict]:
    return client.get("/v1/memories", params={"user_id": user}).json()["results"]


def test_merge_job_merges_what_got_through(client: TestClient) -> None:
    kept = add_all(client, "alice", FACTS, metadata={"a": 1})
    add_all(client, "alice", REPEATS, metadata={"b": 2}, priority=9)
    add_all(client, "alice", LOOK_ALIKES)
    add_all(client, "alice", ["My uncle lives in Toronto."], agent_id="travel")
    add_all(client, "bob", ["My uncle lives in Toronto."] * 2)
    started = client.post("/v1/jobs", json={"kind": "merge", "user_id": "alice"})
    assert started.status_code == 202 and started.json()["status"] in ("queued", "running")
    job = wait_done(client, started.json()["id"])
    assert job["status"] == "done", job
    assert job["progress"]["merged"] == 3 and job["progress"]["users_done"] == 1
    assert job["user_id"] == "alice"
    memories = {m["id"]: m for m in listed(client, "alice")}
    assert len(memories) == 3 + 2 + 1  # facts, look-alikes, the other agent's
    uncle, deploy = memories[kept[0]["id"]], memories[kept[2]["id"]]
    assert uncle["metadata"] == {"a": 1, "b": 2} and uncle["priority"] == 9
    assert deploy["metadata"] == {"a": 1, "b": 2}
    history = client.get(f"/v1/memories/{uncle['id']}/history").json()["results"]
    assert history[-1]["event"] == "UPDATE" and len(history[-1]["payload"]["merged"]) == 2
    for gone in history[-1]["payload"]["merged"]:
        assert client.get(f"/v1/memories/{gone}").status_code == 404
        trail = client.get(f"/v1/memories/{gone}/history").json()["results"]
        assert trail[-1]["event"] == "DELETE"
        assert trail[-1]["payload"]["merged_into"] == uncle["id"]  # the link stays readable
    hits = client.post("/v1/memories/search", json={"user_id": "alice", "query": "uncle",
                                                    "mode": "semantic"}).json()["results"]
    assert not {h["id"] for h in hits} & set(history[-1]["payload"]["merged"])
    assert len(listed(client, "bob")) == 2  # another user: not this job's
    again = wait_done(client, client.post("/v1/jobs", json={"kind": "merge",
                                                            "user_id": "alice"}).json()["id"])
    assert again["progress"]["merged"] == 0  # idempotent
    everyone = wait_done(client, client.post("/v1/jobs", json={"kind": "merge"}).json()["id"])
    assert everyone["progress"]["users_done"] == 2 and everyone["progress"]["merged"] == 1
    assert len(listed(client, "bob")) == 1
    metrics = client.get("/metrics").text
    assert 'memory_jobs_total{kind="merge",status="done"} 3.0' in metrics
    assert "memory_jobs_merged_total 4.0" in metrics


def test_bad_job_requests(client: TestClient) -> None:
    assert client.post("/v1/jobs", json={"kind": "shrink"}).status_code == 422
    assert client.get("/v1/jobs/not-a-uuid").status_code == 422
    missing = client.get("/v1/jobs/01934f4e-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]


def test_a_job_cut_off_mid_way_resumes_after_its_cursor(triton: TritonServer,
                                                        tmp_path: Path) -> None:
    """What a killed process leaves: the job running, its lease expired, the cursor after the
    first user. The next gateway claims it again and goes on from the second user."""
    settings = settings_for(triton, tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        for user in ("u0", "u1", "u2"):
            add_all(client, user, [FACTS[0], REPEATS[0]])

    async def crashed_job() -> str:
        store = SQLiteStore(settings.db_path)
        await store.open()
        job = await store.create_job("01934f4e-0000-7000-8000-0000000000aa", "merge", None,
                                     "2026-01-01T00:00:00.000000Z")
        claimed = await store.claim_job("2026-01-01T00:00:00.000000Z",
                                        "2026-01-01T00:01:00.000000Z")
        assert claimed is not None and claimed.id == job.id
        assert await store.checkpoint_job(claimed, "u0", {"users_done": 1, "merged": 0},
                                          "2026-01-01T00:00:30.000000Z",
                                          "2026-01-01T00:01:00.000000Z")
        await store.close()
        return job.id

    job_id = asyncio.run(crashed_job())
    with TestClient(create_app(settings)) as client:
        job = wait_done(client, job_id)
        assert (job["status"], job["attempts"]) == ("done", 2)
        assert job["progress"]["users_done"] == 3 and job["progress"]["merged"] == 2
        assert len(listed(client, "u0")) == 2  # before the cursor: not redone
        assert [len(listed(client, u)) for u in ("u1", "u2")] == [1, 1]


@pytest.fixture
def keys(triton: TritonServer, tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    settings = settings_for(triton, tmp_path / "data", auth="required")
    with KeyStore(settings.keys_path) as store:
        made = {"a": store.create("a", KeyScope.WRITE)[0].secret_key,
                "b": store.create("b", KeyScope.WRITE)[0].secret_key,
                "admin": store.create("a", KeyScope.ADMIN)[0].secret_key}
    with TestClient(create_app(settings)) as client:
        yield client, made


def test_jobs_follow_tenants_and_scopes(keys: tuple[TestClient, dict[str, str]]) -> None:
    client, made = keys

    def call(who: str, method: str, path: str, **kwargs: object):
        return client.request(method, path, **kwargs,  # type: ignore[arg-type]
                              headers={"Authorization": f"Bearer {made[who]}"})

    assert call("a", "POST", "/v1/jobs", json={"kind": "merge"}).status_code == 403
    mine = call("a", "POST", "/v1/jobs", json={"kind": "merge", "user_id": "alice"})
    assert mine.status_code == 202 and mine.json()["user_id"] == "alice"
    path = f"/v1/jobs/{mine.json()['id']}"
    assert call("a", "GET", path).status_code == 200
    assert call("b", "GET", path).status_code == 404
    assert call("a", "GET", "/v1/jobs").status_code == 403
    everyone = call("admin", "POST", "/v1/jobs", json={"kind": "merge"})
    assert everyone.status_code == 202
    assert {j["id"] for j in call("admin", "GET", "/v1/jobs").json()} >= {
        mine.json()["id"], everyone.json()["id"]}
