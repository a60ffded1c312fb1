"""Kill the gateway process in the middle of a compress job: after a restart the job resumes
and finishes, no memory is lost or duplicated, every archived source is reachable from its
summary. The gateway runs as a real process (``python -m gateway``) and dies by SIGKILL."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
from support.jobs import listed, wait_done
from support.servers import GatewayProcess, gateway_process
from support.waiting import wait_for

from gateway.triton import TritonServer

USERS = 40
PER_USER = 16  # half of them old enough to compress, about 4 to a group
TOPICS = ["baking bread", "train travel", "chess openings", "gardening", "jazz records",
          "mountain hiking", "car repairs", "learning Spanish"]
# A short job lease, so a dead runner's job is claimed again soon.
ENV = {"MEMORY_JOBS_LEASE_S": "2", "MEMORY_COMPRESS_GROUP_SIZE": "4", "MEMORY_AUTH": "off"}


@contextlib.contextmanager
def gateway(triton: TritonServer, data_dir: Path) -> Iterator[tuple[GatewayProcess,
                                                                    httpx.Client]]:
    """``python -m gateway`` and a client for it."""
    with gateway_process(triton, data_dir, env=ENV) as served, \
            httpx.Client(base_url=served.url, timeout=30) as client:
        yield served, client


def seed(client: httpx.Client) -> dict[str, dict[str, dict]]:
    items = []
    for u in range(USERS):
        for n in range(PER_USER):
            topic = TOPICS[(u + n) % len(TOPICS)]
            items.append({"user_id": f"user-{u:02d}", "dedup": False,
                          "text": f"Note {n} of user {u} about {topic}: detail {n * 7 + u}.",
                          "occurred_at": f"2024-{1 + n % 12:02d}-{1 + n:02d}T09:00:00Z"})
    response = client.post("/v1/memories/batch", json={"items": items})
    assert response.status_code == 201, response.text
    return {f"user-{u:02d}": listed(client, f"user-{u:02d}") for u in range(USERS)}


def test_killed_mid_compress_resumes_without_loss_or_duplicates(triton: TritonServer,
                                                                tmp_path: Path) -> None:
    data = tmp_path / "data"
    with gateway(triton, data) as (served, client):
        before = seed(client)
        job_id = client.post("/v1/jobs", json={"kind": "compress"}).json()["id"]

        def some_users_done() -> dict | None:  # kill once the job is part way through
            job = client.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] in ("queued", "running"), f"ended before the kill: {job}"
            return job if job["progress"].get("users_done", 0) >= 1 else None

        job = wait_for(some_users_done, "the job to finish its first user", poll_s=0.005)
        served.process.send_signal(signal.SIGKILL)
        served.process.wait(30)
    cut = job["progress"]["users_done"]
    assert 1 <= cut < USERS

    with gateway(triton, data) as (_, client):
        job = wait_done(client, job_id, timeout_s=120)
        assert job["status"] == "done" and job["attempts"] == 2, job
        assert job["progress"]["users_done"] == USERS
        for user, original in before.items():
            now = listed(client, user, include_archived="true")
            summaries = {i: m for i, m in now.items() if m["sources"] is not None}
            assert summaries, f"{user} was not compressed"
            assert set(now) == set(original) | set(summaries)  # nothing lost, nothing extra
            assert all(now[i]["text"] == m["text"] for i, m in original.items())
            folded = [s for m in summaries.values() for s in m["sources"]]
            assert len(folded) == len(set(folded))  # no source in two summaries
            archived = {i for i, m in now.items() if m["archived_at"] is not None}
            assert set(folded) == archived
            for summary_id, summary in summaries.items():
                for source in summary["sources"]:  # reachable from its summary, and back
                    assert now[source]["summary_id"] == summary_id
        again = wait_done(client, client.post("/v1/jobs", json={"kind": "compress"}).json()["id"])
        assert again["progress"]["summaries"] == 0  # idempotent after the resume
