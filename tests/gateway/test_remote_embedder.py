"""Remote embedding versions against a real OpenAI-compatible server (infinity-emb) and a
real Triton: the same MiniLM folder served both ways.

Version 1 is the Triton export; ``<N>.remote.toml`` declares Infinity serving the same model.
The swap test goes Triton 1 -> remote 2 -> Triton 3, where 3 is a different space (reversed,
256-d): a query embedded in one space and searched in another fails outright there.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import make_triton, run, settings_for, wait_for
from support.embedder_versions import add_other_space_version
from support.infinity import DIM, InfinityServer, declare_remote, infinity_or_skip
from support.servers import free_ports, gateway_process

from gateway.app import create_app
from gateway.inference.client import EmbedderClient
from gateway.inference.remote_versions import RemoteVersions
from gateway.metrics import Metrics
from gateway.triton import TritonServer
from loadtest.repository import copy_latest_as_v1

PROBES = ["I love hiking in the Alps", "My sister lives in Lisbon", "I am allergic to peanuts",
          "The deploy failed because the disk was full", "réunion à 15 h, salle 3",
          "a", "why does the CI job time out on arm64 builds?" * 5, "数据库迁移失败"]
FACTS = PROBES[:5]
MIGRATION_TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
def infinity(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfinityServer]:
    infinity_or_skip()
    with InfinityServer(tmp_path_factory.mktemp("infinity-logs")) as server:
        yield server


@pytest.fixture
def own_triton(tmp_path: Path) -> Iterator[TritonServer]:
    infinity_or_skip()  # skip before paying for a Triton start
    server = make_triton(tmp_path, repository=copy_latest_as_v1(tmp_path))
    with server:
        yield server


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_remote_vectors_agree_with_triton(infinity: InfinityServer,
                                          own_triton: TritonServer) -> None:
    repo = own_triton.model_repository
    declare_remote(repo, "2", infinity.base_url, batch_size=3)
    run(_agreement(own_triton, repo))


async def _agreement(own_triton: TritonServer, repo: Path) -> None:
    metrics = Metrics()
    client = EmbedderClient(own_triton.grpc_url, "embedder", timeout_s=60, retry_after_s=1,
                            metrics=metrics,
                            remotes=RemoteVersions(repo, "embedder", metrics=metrics))
    try:
        info = await client.probe("2")
        assert (info.label, info.dim) == ("embedder:2", DIM)
        local = await client.embed(PROBES, version="1")
        remote = await client.embed(PROBES, version="2")  # 3 requests of at most 3 texts
        assert remote.shape == (len(PROBES), DIM) and remote.dtype == np.float32
        assert np.allclose(np.linalg.norm(remote, axis=1), 1.0, atol=1e-5)
        cosines = _cosines(local, remote)
        assert cosines.min() >= 0.999, cosines
        texts = metrics.registry.get_sample_value("memory_remote_embed_texts_count",
                                                  {"version": "embedder:2"})
        assert texts == 1 + 3  # the probe, then the split batch
        assert await client.ready("2")
    finally:
        await client.close()


def test_registration_refuses_bad_declarations(infinity: InfinityServer,
                                               own_triton: TritonServer,
                                               tmp_path: Path) -> None:
    repo = own_triton.model_repository
    settings = settings_for(own_triton, tmp_path / "data", reembed_batch=4)
    nobody = f"http://127.0.0.1:{free_ports(1)[0]}"
    declare_remote(repo, "2", infinity.base_url, dim=256)  # the server gives 384
    declare_remote(repo, "3", nobody, retries=0)
    (repo / "embedder" / "4.remote.toml").write_text(f'base_url = "{infinity.base_url}"\n')
    declare_remote(repo, "5", infinity.base_url, api_key_env="MEMORY_TEST_UNSET_KEY_VAR")
    (repo / "embedder" / "6.remote.toml").write_text("base_url = [broken\n")
    with TestClient(create_app(settings)) as client:
        client.post("/v1/memories/batch", json={"items": [
            {"user_id": "u", "text": f"{fact} #{i}"} for i, fact in enumerate(FACTS * 2)]})
        expected = {"2": (422, "384 dimensions, the version declares 256"),
                    "3": (503, "cannot be registered"),
                    "4": (422, "model: Field required"),
                    "5": (422, "MEMORY_TEST_UNSET_KEY_VAR"),
                    "6": (422, "not valid TOML")}
        for version, (code, detail) in expected.items():
            response = client.post("/v1/admin/models/embedder/activate",
                                   json={"version": version})
            assert response.status_code == code, (version, response.text)
            assert detail in response.json()["detail"], (version, response.text)
        view = client.get("/v1/admin/models").json()["embedder"]
        assert (view["active"], view["target"], view["served"]) == ("1", None, ["1"])
        assert view["repository"] == ["1", "2", "3", "4", "5", "6"]
        page = client.get("/v1/memories", params={"user_id": "u", "limit": 100}).json()
        assert {m["embedding_model"] for m in page["results"]} == {"embedder:1"}
        found = client.post("/v1/memories/search", json={"user_id": "u", "query": "nut allergy"})
        assert "peanuts" in found.json()["results"][0]["text"]


def test_a_remote_version_stays_active_across_restarts(infinity: InfinityServer,
                                                       own_triton: TritonServer,
                                                       tmp_path: Path) -> None:
    repo = own_triton.model_repository
    declare_remote(repo, "2", infinity.base_url)
    settings = settings_for(own_triton, tmp_path / "data", reembed_batch=4)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/memories/batch", json={"items": [
            {"user_id": "u", "text": f"{fact} #{i}"} for i, fact in enumerate(FACTS * 2)]})
        assert client.post("/v1/admin/models/embedder/activate",
                           json={"version": "2"}).status_code == 202
        wait_for(lambda: client.get("/v1/admin/models/embedder/migration").json()["state"]
                 == "done", "the migration to the remote version", MIGRATION_TIMEOUT_S)
    with TestClient(create_app(settings)) as client:  # a restarted gateway
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert (ready.json()["checks"]["model"], ready.json()["query_encoder"]) == (
            "embedder:2", "remote")
        added = client.post("/v1/memories", json={"user_id": "u", "text": "I fear heights"})
        assert added.json()["embedding_model"] == "embedder:2"
        found = client.post("/v1/memories/search", json={"user_id": "u", "query": "nut allergy"})
        assert "peanuts" in found.json()["results"][0]["text"]
        view = client.get("/v1/admin/models").json()["embedder"]
        assert view["active"] == "2" and view["remote"]["2"]["breaker"] == "closed"
        assert view["remote"]["2"]["encoding_format"] == "base64"  # infinity-emb speaks it
        assert "api_key" not in str(view["remote"])


def _metric(url: str, name: str, labels: str) -> float:
    """One sample of the gateway's /metrics (0 when absent)."""
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.split()[-1])
    return 0.0


def test_live_swap_triton_remote_triton_under_load(infinity: InfinityServer,
                                                   own_triton: TritonServer,
                                                   tmp_path: Path) -> None:
    repo = Path(own_triton.model_repository)
    env = {"MEMORY_REEMBED_BATCH": "16", "MEMORY_ADMISSION_ENABLED": "false",
           "MEMORY_MODEL_REPOSITORY": str(repo), "MEMORY_DEADLINE_ADMIN_MS": "120000"}
    with gateway_process(own_triton, tmp_path / "data", tmp_path, env=env) as served:
        url = served.url
        http = httpx.Client(base_url=url, timeout=60)
        users = [f"user-{i}" for i in range(4)]
        seed = [{"user_id": u, "text": f"{fact} (note {i} of {u})"}
                for u in users for i, fact in enumerate(FACTS * 8)]
        assert http.post("/v1/memories/batch", json={"items": seed}).status_code == 201

        failures: list[str] = []
        counts = {"add": 0, "search": 0}
        counted = threading.Lock()  # four threads add to the counts
        stop = threading.Event()

        def client(user: str) -> None:
            with httpx.Client(base_url=url, timeout=60) as mine:
                n = 0
                while not stop.is_set():
                    n += 1
                    added = mine.post("/v1/memories", json={"user_id": user,
                                                            "text": f"{user} event {n}"})
                    found = mine.post("/v1/memories/search", json={
                        "user_id": user, "query": "allergy to nuts", "limit": 3})
                    for response in (added, found):
                        if response.status_code >= 300:
                            failures.append(f"{response.status_code} {response.text[:200]}")
                    if found.status_code == 200 and "peanuts" not in found.json()[
                            "results"][0]["text"]:
                        failures.append(f"bad ranking: {found.json()['results'][0]['text']}")
                    with counted:
                        counts["add"] += 1
                        counts["search"] += 1

        def swap_to(version: str, encoder: str) -> None:
            started = http.post("/v1/admin/models/embedder/activate", json={"version": version})
            assert started.status_code == 202, started.text
            status = wait_for(lambda: (s := http.get("/v1/admin/models/embedder/migration")
                                       .json())["state"] == "done" and s,
                              f"the migration to {version} to finish", MIGRATION_TIMEOUT_S)
            assert status["done"] == status["total"]
            switched = counts["search"]  # keep the load on after the switch
            wait_for(lambda: counts["search"] >= switched + 2 * len(users),
                     f"the load to run on version {version}")
            assert http.get("/readyz").json()["query_encoder"] == encoder

        threads = [threading.Thread(target=client, args=(u,)) for u in users]
        for thread in threads:
            thread.start()
        try:
            wait_for(lambda: counts["search"] >= 2 * len(users), "the load to run first")
            declare_remote(repo, "2", infinity.base_url, batch_size=16)
            swap_to("2", "remote")
            models = http.get("/v1/admin/models").json()["embedder"]
            assert models["active"] == "2" and models["remote"]["2"]["dim"] == DIM
            labels = _metric(url, "memory_remote_embed_texts_count", 'version="embedder:2"')
            assert labels > 0  # writes and queries went to the remote server
            add_other_space_version(repo, "3")  # 256-d: mixing spaces would fail outright
            swap_to("3", "local")
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)

        assert failures == [], failures[:5]
        assert counts["search"] > 4 * len(users)
        models = http.get("/v1/admin/models").json()["embedder"]
        assert (models["active"], models["served"]) == ("3", ["3"])
        stored = 0
        for user in users:  # every page: a fast machine adds well over 1,000 per user
            cursor: str | None = None
            while True:
                params = {"user_id": user, "limit": 1000} | ({"cursor": cursor} if cursor else {})
                page = http.get("/v1/memories", params=params).json()
                assert {m["embedding_model"] for m in page["results"]} <= {"embedder:3"}
                stored += len(page["results"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
        assert stored == len(seed) + counts["add"]
        http.close()


def test_remote_killed_mid_batch_gives_503_and_recovers(infinity: InfinityServer,
                                                        own_triton: TritonServer,
                                                        tmp_path: Path) -> None:
    repo = Path(own_triton.model_repository)
    declare_remote(repo, "2", infinity.base_url, batch_size=4, retries=1, backoff_s=0.05,
                   breaker_failures=3, breaker_reset_s=1.0, retry_after_s=3)
    env = {"MEMORY_MODEL_REPOSITORY": str(repo), "MEMORY_DEADLINE_ADMIN_MS": "120000",
           "MEMORY_QUERY_CACHE_SIZE": "0"}
    with gateway_process(own_triton, tmp_path / "data", tmp_path, env=env) as served:
        url = served.url
        http = httpx.Client(base_url=url, timeout=60)
        seed = [{"user_id": "u", "text": f"{fact} #{i}"} for i, fact in enumerate(FACTS * 2)]
        assert http.post("/v1/memories/batch", json={"items": seed}).status_code == 201
        assert http.post("/v1/admin/models/embedder/activate",
                         json={"version": "2"}).status_code == 202
        wait_for(lambda: http.get("/v1/admin/models/embedder/migration").json()["state"]
                 == "done", "the migration to the remote version", MIGRATION_TIMEOUT_S)

        # Freeze the server, send a batch, and kill the server while it holds the batch.
        sent = _metric(url, "memory_remote_embed_texts_count", 'version="embedder:2"')
        infinity.signal(signal.SIGSTOP)
        outcome: dict[str, httpx.Response] = {}
        batch = [{"user_id": "u", "text": f"lost batch item {i}"} for i in range(40)]
        writer = threading.Thread(target=lambda: outcome.setdefault(
            "batch", http.post("/v1/memories/batch", json={"items": batch})))
        writer.start()
        wait_for(lambda: _metric(url, "memory_remote_embed_texts_count",
                                 'version="embedder:2"') > sent,
                 "the batch to reach the remote server")
        infinity.kill()
        writer.join(120)
        failed = outcome["batch"]
        assert failed.status_code == 503, failed.text
        assert int(failed.headers["Retry-After"]) >= 1
        assert "remote embedder embedder:2" in failed.json()["detail"]
        searched = http.post("/v1/memories/search", json={"user_id": "u", "query": "nuts"})
        assert searched.status_code == 503 and "Retry-After" in searched.headers
        wait_for(lambda: http.get("/readyz").status_code == 503,
                 "readiness to report the open breaker")
        page = http.get("/v1/memories", params={"user_id": "u", "limit": 100}).json()
        assert len(page["results"]) == len(seed)  # nothing of the failed batch was stored

        infinity.start()  # the same port: the version's declaration is unchanged
        wait_for(lambda: http.post("/v1/memories", json={
            "user_id": "u", "text": "I am back after the outage"}).status_code == 201,
            "writes to succeed once the server is back", 120)
        wait_for(lambda: http.get("/readyz").status_code == 200, "readiness to return")
        found = http.post("/v1/memories/search", json={"user_id": "u", "query": "nut allergy"})
        assert found.status_code == 200
        assert "peanuts" in found.json()["results"][0]["text"]
        http.close()
