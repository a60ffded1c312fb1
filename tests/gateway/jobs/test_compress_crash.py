"""Kill the gateway process in the middle of a compress job: after a restart the job resumes
and finishes, no memory is lost or duplicated, every archived source is reachable from its
summary. The gateway runs as a real process (``python -m gateway``) and dies by SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from job_support import listed, wait_done
from support import free_ports

from gateway.settings import ROOT
from gateway.triton import TritonServer

USERS = 40
PER_USER = 16  # half of them old enough to compress, about 4 to a group
START_TIMEOUT_S = 120.0
TOPICS = ["baking bread", "train travel", "chess openings", "gardening", "jazz records",
          "mountain hiking", "car repairs", "learning Spanish"]


@contextlib.contextmanager
def gateway_process(triton: TritonServer, data_dir: Path) -> Iterator[
        tuple[subprocess.Popen[bytes], httpx.Client]]:
    """``python -m gateway`` on a free port (a short job lease, so a dead runner's job is
    claimed again soon); yields the process and a client once /readyz answers 200."""
    port = free_ports(1)[0]
    env = dict(os.environ) | {
        "GATEWAY_PORT": str(port), "MEMORY_DATA_DIR": str(data_dir),
        "MEMORY_TRITON_MANAGED": "false", "MEMORY_TRITON_HOST": triton.host,
        "MEMORY_TRITON_GRPC_PORT": str(triton.grpc_port),
        "MEMORY_TRITON_HTTP_PORT": str(triton.http_port),
        "MEMORY_TRITON_METRICS_PORT": str(triton.metrics_port),
        "MEMORY_JOBS_LEASE_S": "2", "MEMORY_COMPRESS_GROUP_SIZE": "4", "MEMORY_AUTH": "off"}
    log = (data_dir.parent / f"gateway-{port}.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, cwd=ROOT,
                               stdout=log, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"gateway exited; see {log.name}"
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/readyz").status_code == 200:
                    break
            assert time.monotonic() < deadline, f"gateway not ready; see {log.name}"
            time.sleep(0.05)
        yield process, client
    finally:
        client.close()
        if process.poll() is None:
            process.terminate()
            process.wait(30)
        log.close()


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
    with gateway_process(triton, data) as (process, client):
        before = seed(client)
        job_id = client.post("/v1/jobs", json={"kind": "compress"}).json()["id"]
        deadline = time.monotonic() + 60
        while True:  # kill once some users are done and the job is still running
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] == "running" and job["progress"].get("users_done", 0) >= 1:
                break
            assert job["status"] in ("queued", "running"), f"ended before the kill: {job}"
            assert time.monotonic() < deadline, f"no progress: {job}"
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    cut = job["progress"]["users_done"]
    assert 1 <= cut < USERS

    with gateway_process(triton, data) as (_, client):
        job = wait_done(client, job_id, deadline_s=120)
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
