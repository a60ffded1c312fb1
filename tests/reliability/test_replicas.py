"""Two gateway processes on one store, each with its own vector index kept fresh by the change
feed: a write through A is found by a vector search through B, a delete through B is gone
from A; A killed (SIGKILL) in the middle of writes loses no acknowledged write, B keeps
serving, and A restarted catches up.

Searches here are ``semantic`` with client-supplied vectors, so a hit can only come from the
replica's own vector index (never from the store's keyword index), and Triton's speed does not
matter. The store is PostgreSQL (``MEMORY_STORE_URL``, each replica with a data directory of
its own; following the feed is the default there), or one SQLite file shared by both processes
(``MEMORY_FEED_FOLLOW=true``).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.servers import GatewayProcess, gateway_process
from support.waiting import wait_for

from gateway.triton import TritonServer

DIM = 384
ENV = {"MEMORY_AUTH": "off", "MEMORY_JOBS_INTERVAL_S": "3600", "MEMORY_JOBS_LEASE_S": "5"}
# The store of both replicas: whether they share one data directory, and their settings.
StoreEnv = tuple[bool, dict[str, str]]
BACKENDS: dict[str, Callable[[pytest.FixtureRequest], StoreEnv]] = {
    "sqlite": lambda _: (True, {"MEMORY_FEED_FOLLOW": "true", "MEMORY_FEED_POLL_MS": "20"}),
    "postgres": lambda request: (False, {
        "MEMORY_STORE_URL": request.getfixturevalue("postgres_url")}),
}


@pytest.fixture(params=sorted(BACKENDS))
def store_env(request: pytest.FixtureRequest) -> StoreEnv:
    return BACKENDS[request.param](request)


@contextlib.contextmanager
def replica(triton: TritonServer, store_env: StoreEnv, name: str,
            tmp: Path) -> Iterator[tuple[GatewayProcess, httpx.Client]]:
    shared, env = store_env
    data = tmp / ("data" if shared else f"data-{name}")
    with gateway_process(triton, data, log_dir=tmp / "logs" / name, env=ENV | env) as served, \
            httpx.Client(base_url=served.url, timeout=30) as client:
        yield served, client


def vector(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()


def add(client: httpx.Client, seed: int, user: str = "u") -> str:
    response = client.post("/v1/memories", json={
        "user_id": user, "text": f"memory number {seed}", "embedding": vector(seed),
        "dedup": False})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def found(client: httpx.Client, seed: int, user: str = "u") -> set[str]:
    """Ids a vector search for ``seed``'s vector returns (the replica's index only)."""
    response = client.post("/v1/memories/search", json={
        "user_id": user, "embedding": vector(seed), "mode": "semantic", "limit": 5})
    assert response.status_code == 200, response.text
    return {r["id"] for r in response.json()["results"] if r["score"] > 0.99}


def test_two_replicas_see_each_others_writes_and_survive_a_kill(
        triton: TritonServer, store_env: StoreEnv, tmp_path: Path) -> None:
    logs = tmp_path
    with replica(triton, store_env, "b", logs) as (_, b):
        with replica(triton, store_env, "a", logs) as (served_a, a):
            written = add(a, 1)
            assert found(a, 1) == {written}  # read-your-writes on the writer: at once
            wait_for(lambda: found(b, 1) == {written}, "A's write to be searchable on B")
            assert b.delete(f"/v1/memories/{written}").status_code == 204
            assert found(b, 1) == set()
            wait_for(lambda: found(a, 1) == set(), "B's delete to reach A")

            acknowledged: list[tuple[int, str]] = []
            stop = threading.Event()

            def write_through_a() -> None:
                seed = 100
                while not stop.is_set():
                    with contextlib.suppress(httpx.HTTPError):
                        acknowledged.append((seed, add(a, seed)))
                    seed += 1

            writer = threading.Thread(target=write_through_a, daemon=True)
            writer.start()
            wait_for(lambda: len(acknowledged) >= 10 or None, "A to acknowledge writes")
            served_a.process.send_signal(signal.SIGKILL)
            served_a.process.wait(30)
            stop.set()
            writer.join(30)

        # B keeps serving, and holds every write A acknowledged before it died.
        for seed, memory_id in acknowledged:
            wait_for(lambda s=seed, m=memory_id: m in found(b, s) or None,
                     f"A's acknowledged write {memory_id} on B")
        while_away = add(b, 7)

        with replica(triton, store_env, "a", logs) as (_, a):  # restarted: catches up
            for seed, memory_id in [*acknowledged, (7, while_away)]:
                assert memory_id in found(a, seed)
            later = add(b, 8)
            wait_for(lambda: found(a, 8) == {later}, "B's write after A's restart on A")
            metrics = a.get("/metrics").text
            assert "memory_feed_applied_seq" in metrics

            # A job asked on one replica runs once across both (the job table's leases).
            job = a.post("/v1/jobs", json={"kind": "expire"})
            assert job.status_code in (201, 202), job.text
            job_id = job.json()["id"]

            def finished() -> dict | None:
                seen = b.get(f"/v1/jobs/{job_id}").json()
                return seen if seen["status"] in ("done", "failed") else None

            done = wait_for(finished, "the job to finish")
            assert done["status"] == "done" and done["attempts"] == 1, done
