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

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.embedder_versions import add_other_space_version
from support.servers import GatewayProcess, gateway_process, make_triton
from support.waiting import wait_for

from gateway.triton import TritonServer
from loadtest.repository import copy_latest_as_v1

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


@pytest.fixture
def own_triton(tmp_path: Path) -> Iterator[TritonServer]:
    """A Triton of this test's own, on a copy of the repository a second version joins."""
    server = make_triton(tmp_path, repository=copy_latest_as_v1(tmp_path))
    with server:
        yield server


def test_a_model_switch_on_one_replica_is_followed_by_the_other(
        own_triton: TritonServer, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Version 2 is another embedding space of another size (256-d): a replica still
    searching the old space would refuse a 256-d vector and answer text searches wrongly."""
    env = BACKENDS["postgres"](request)[1] | {
        "MEMORY_MODEL_REPOSITORY": str(own_triton.model_repository),
        "MEMORY_DEADLINE_ADMIN_MS": "120000", "MEMORY_REEMBED_BATCH": "8"}
    store: StoreEnv = (False, env)
    facts = ["I love hiking in the Alps", "My sister lives in Lisbon",
             "I am allergic to peanuts", "I prefer window seats on flights"]
    with replica(own_triton, store, "a", tmp_path) as (_, a), \
            replica(own_triton, store, "b", tmp_path) as (_, b):
        seeded = a.post("/v1/memories/batch", json={"items": [
            {"user_id": "u", "text": f"{fact} (note {i})"} for i in range(3) for fact in facts]})
        assert seeded.status_code == 201, seeded.text
        add_other_space_version(Path(own_triton.model_repository))
        started = a.post("/v1/admin/models/embedder/activate", json={"version": "2"})
        assert started.status_code == 202, started.text
        again = b.post("/v1/admin/models/embedder/activate", json={"version": "2"})
        assert again.status_code == 409, again.text  # one migration, begun by A
        wait_for(lambda: a.get("/v1/admin/models/embedder/migration").json()["state"] == "done",
                 "the migration to finish on A", 180)
        wait_for(lambda: b.get("/readyz").json()["checks"]["model"] == "embedder:2",
                 "B to switch to version 2")
        probe = {"user_id": "u", "embedding": [0.0625] * 256, "mode": "semantic"}
        assert b.post("/v1/memories/search", json=probe).status_code == 200
        for replica_client in (a, b):
            found = replica_client.post("/v1/memories/search", json={
                "user_id": "u", "query": "nut allergy", "mode": "semantic"})
            assert "peanuts" in found.json()["results"][0]["text"], found.text
        later = b.post("/v1/memories", json={"user_id": "u", "text": "My cat is called Miso"})
        assert later.status_code == 201 and later.json()["embedding_model"] == "embedder:2"

        def a_finds_it() -> bool:
            found = a.post("/v1/memories/search", json={
                "user_id": "u", "query": "what is my cat's name", "mode": "semantic"})
            return "Miso" in found.json()["results"][0]["text"]

        wait_for(a_finds_it, "B's write in the new space to reach A")


def _serve_both_versions(triton: TritonServer) -> None:
    """Make Triton serve versions 1 and 2 again, as a lagging replica's own Triton would (here
    the replicas share one, and the switch unloaded version 1)."""
    from tritonclient.grpc import aio as grpcclient

    from gateway.versions.control import ModelControl
    from gateway.versions.query_model import query_model_name

    async def serve() -> None:
        client = grpcclient.InferenceServerClient(triton.grpc_url)
        try:
            control = ModelControl(client, retry_after_s=1)
            for model in ("embedder", query_model_name("embedder")):
                if await control.served_versions(model):
                    await control.serve(model, ["1", "2"])
        finally:
            await client.close()

    asyncio.run(serve())


def test_a_write_racing_a_switch_made_elsewhere_lands_in_the_new_space(
        own_triton: TritonServer, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """B does not follow the feed (``MEMORY_FEED_FOLLOW=false``): it stays in the moment after
    A's switch committed and before B followed it, for as long as the test needs. Version 2
    is another space of the same size, so an old-space vector would fit the new index and be
    scored in the wrong space. B's write is refused by the store, B follows the switch, embeds
    again with version 2 and writes: the client sees 201 in the new space, and A's follower
    indexes it (it leaves rows of another space out)."""
    env = BACKENDS["postgres"](request)[1] | {
        "MEMORY_MODEL_REPOSITORY": str(own_triton.model_repository),
        "MEMORY_DEADLINE_ADMIN_MS": "120000", "MEMORY_REEMBED_BATCH": "8"}
    with replica(own_triton, (False, env), "a", tmp_path) as (_, a), \
            replica(own_triton, (False, env | {"MEMORY_FEED_FOLLOW": "false"}), "b",
                    tmp_path) as (_, b):
        seeded = a.post("/v1/memories/batch", json={"items": [
            {"user_id": "u", "text": text} for text in (
                "I love hiking in the Alps", "My sister lives in Lisbon",
                "I prefer window seats on flights")]})
        assert seeded.status_code == 201, seeded.text
        add_other_space_version(Path(own_triton.model_repository), same_size=True)
        started = a.post("/v1/admin/models/embedder/activate", json={"version": "2"})
        assert started.status_code == 202, started.text
        wait_for(lambda: a.get("/v1/admin/models/embedder/migration").json()["state"] == "done",
                 "the migration to finish on A", 180)
        _serve_both_versions(own_triton)
        assert b.get("/readyz").json()["checks"]["model"] == "embedder:1"  # not followed
        written = b.post("/v1/memories", json={"user_id": "u", "text": "My cat is called Miso",
                                               "dedup": False})
        assert written.status_code == 201, written.text
        assert written.json()["embedding_model"] == "embedder:2"
        assert b.get("/readyz").json()["checks"]["model"] == "embedder:2"
        stored = a.get(f"/v1/memories/{written.json()['id']}").json()
        assert stored["embedding_model"] == "embedder:2"

        def finds_it(client: httpx.Client) -> bool:
            found = client.post("/v1/memories/search", json={
                "user_id": "u", "query": "what is my cat's name", "mode": "semantic"})
            assert found.status_code == 200, found.text
            return "Miso" in found.json()["results"][0]["text"]

        assert finds_it(b)
        wait_for(lambda: finds_it(a), "B's write in the new space to reach A")
