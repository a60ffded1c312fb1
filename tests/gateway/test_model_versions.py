"""Live embedder version swaps against a real Triton server.

Version 2 here is version 1 with its output reversed and cut to 256 dimensions: a different
embedding space of a different size. A query embedded in one space and searched in the other
would fail outright (dimension mismatch), so "no failed request" also proves "never mixed".
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support import make_triton, settings_for, wait_for
from support.embedder_versions import add_other_space_version
from support.servers import gateway_process

from gateway.app import create_app
from gateway.triton import TritonServer
from loadtest.repository import copy_latest_as_v1

FACTS = ["I love hiking in the Alps", "My sister lives in Lisbon", "I am allergic to peanuts",
         "The deploy failed because the disk was full", "I prefer window seats on flights"]


@pytest.fixture
def own_triton(tmp_path: Path):
    server = make_triton(tmp_path, repository=copy_latest_as_v1(tmp_path))
    with server:
        yield server


MIGRATION_TIMEOUT_S = 180.0  # re-embedding every memory on a busy 2-core machine


def test_swap_under_concurrent_load(own_triton: TritonServer, tmp_path: Path) -> None:
    # Loading a version under load can outlast the 10 s admin default on a busy 2-core machine.
    env = {"MEMORY_REEMBED_BATCH": "16", "MEMORY_ADMISSION_ENABLED": "false",
           "MEMORY_MODEL_REPOSITORY": str(own_triton.model_repository),
           "MEMORY_DEADLINE_ADMIN_MS": "120000"}
    with gateway_process(own_triton, tmp_path / "data", tmp_path, env=env) as served:
        url = served.url
        http = httpx.Client(base_url=url, timeout=30)
        users = [f"user-{i}" for i in range(4)]
        seed = [{"user_id": u, "text": f"{fact} (note {i} of {u})"}
                for u in users for i, fact in enumerate(FACTS * 12)]
        assert http.post("/v1/memories/batch", json={"items": seed}).status_code == 201
        assert http.get("/v1/admin/models").json()["embedder"]["active"] == "1"

        failures: list[str] = []
        counts = {"add": 0, "search": 0}
        counted = threading.Lock()  # four threads add to the counts
        stop = threading.Event()

        def client(user: str) -> None:
            with httpx.Client(base_url=url, timeout=30) as mine:
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

        threads = [threading.Thread(target=client, args=(u,)) for u in users]
        for thread in threads:
            thread.start()
        wait_for(lambda: counts["search"] >= 2 * len(users), "the load to run before the swap")
        add_other_space_version(Path(own_triton.model_repository))
        started = http.post("/v1/admin/models/embedder/activate", json={"version": "2"})
        assert started.status_code == 202, started.text
        status = wait_for(lambda: (s := http.get("/v1/admin/models/embedder/migration").json())[
            "state"] == "done" and s, "the migration to finish", MIGRATION_TIMEOUT_S)
        switched = counts["search"]  # keep the load on after the switch
        wait_for(lambda: counts["search"] >= switched + 2 * len(users),
                 "the load to run after the swap")
        stop.set()
        for thread in threads:
            thread.join(30)

        assert failures == [], failures[:5]
        assert counts["search"] > 20
        models = http.get("/v1/admin/models").json()["embedder"]
        assert (models["active"], models["served"]) == ("2", ["2"])
        # The gateway embeds queries with version 2's own files from the switch on.
        assert http.get("/readyz").json()["query_encoder"] == "local"
        stored = 0
        for user in users:
            page = http.get("/v1/memories", params={"user_id": user, "limit": 1000}).json()
            assert {m["embedding_model"] for m in page["results"]} == {"embedder:2"}
            stored += len(page["results"])
        assert stored == len(seed) + counts["add"]
        assert status["done"] == status["total"]
        found = http.post("/v1/memories/search",
                          json={"user_id": "user-0", "query": "where does my sister live"})
        assert "Lisbon" in found.json()["results"][0]["text"]
        http.close()


def test_interrupted_migration_resumes_after_restart(
    own_triton: TritonServer, tmp_path: Path
) -> None:
    settings = settings_for(own_triton, tmp_path / "data", reembed_batch=4)
    items = [{"user_id": "u", "text": f"{fact} #{i}"} for i, fact in enumerate(FACTS * 20)]
    with TestClient(create_app(settings)) as client:
        client.post("/v1/memories/batch", json={"items": items})
        add_other_space_version(Path(own_triton.model_repository))
        assert client.post("/v1/admin/models/embedder/activate",
                           json={"version": "2"}).status_code == 202
        assert client.post("/v1/admin/models/embedder/activate",  # one at a time
                           json={"version": "2"}).status_code == 409
    # The gateway stopped mid-way (100 memories, 4 per batch): the store has the cursor.
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/v1/admin/models/embedder/migration").json()[
            "state"] == "done", "the resumed migration to finish", MIGRATION_TIMEOUT_S)
        page = client.get("/v1/memories", params={"user_id": "u", "limit": 1000}).json()
        assert {m["embedding_model"] for m in page["results"]} == {"embedder:2"}
        found = client.post("/v1/memories/search", json={"user_id": "u", "query": "nut allergy"})
        assert "peanuts" in found.json()["results"][0]["text"]


def test_abandon_rolls_back_and_bad_requests_change_nothing(
    own_triton: TritonServer, tmp_path: Path
) -> None:
    settings = settings_for(own_triton, tmp_path / "data", reembed_batch=2)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/memories/batch", json={"items": [
            {"user_id": "u", "text": f"{fact} #{i}"} for i, fact in enumerate(FACTS * 10)]})
        for body, code in [({"version": "7"}, 404), ({"version": "1"}, 409),
                           ({"version": "x"}, 422), ({}, 422)]:
            response = client.post("/v1/admin/models/embedder/activate", json=body)
            assert response.status_code == code, (body, response.text)
        assert client.post("/v1/admin/models/embedder/abandon").status_code == 409
        add_other_space_version(Path(own_triton.model_repository))
        client.post("/v1/admin/models/embedder/activate", json={"version": "2"})
        rolled = client.post("/v1/admin/models/embedder/abandon")
        assert rolled.status_code == 200, rolled.text
        models = client.get("/v1/admin/models").json()["embedder"]
        assert (models["active"], models["target"], models["served"]) == ("1", None, ["1"])
        page = client.get("/v1/memories", params={"user_id": "u", "limit": 1000}).json()
        assert {m["embedding_model"] for m in page["results"]} == {"embedder:1"}
        found = client.post("/v1/memories/search", json={"user_id": "u", "query": "nut allergy"})
        assert "peanuts" in found.json()["results"][0]["text"]


def test_admin_api_can_be_disabled(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", admin_enabled=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/admin/models").status_code == 404


def test_operator_cli_activates_and_lists(own_triton: TritonServer, tmp_path: Path) -> None:
    env = {"MEMORY_MODEL_REPOSITORY": str(own_triton.model_repository)}
    with gateway_process(own_triton, tmp_path / "data", tmp_path, env=env) as served:
        url = served.url
        httpx.post(f"{url}/v1/memories/batch", json={"items": [
            {"user_id": "u", "text": fact} for fact in FACTS]}, timeout=30)
        add_other_space_version(Path(own_triton.model_repository))

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "gateway.models", *args, "--url", url],
                                  capture_output=True, text=True, timeout=300, check=False)

        listed = cli("list")
        assert listed.returncode == 0, listed.stderr
        assert "embedder" in listed.stdout and "1, 2" in listed.stdout
        activated = cli("activate", "embedder", "2")
        assert activated.returncode == 0, activated.stderr
        assert "embedder:2 is active" in activated.stderr
        again = cli("activate", "embedder", "2")
        assert again.returncode == 1 and "already active" in again.stderr
        assert "2" in cli("list").stdout


def test_reranker_swap_is_remembered_across_restarts(
    reranker_repo: Path, tmp_path: Path
) -> None:
    repo = copy_latest_as_v1(tmp_path, "embedder")
    copy_latest_as_v1(tmp_path, "reranker", source=reranker_repo)
    shutil.copytree(repo / "reranker" / "1", repo / "reranker" / "2")
    server = make_triton(tmp_path, repository=repo, models=("embedder", "reranker"))
    with server:
        settings = settings_for(server, tmp_path / "data")
        with TestClient(create_app(settings)) as client:
            view = client.get("/v1/admin/models").json()["reranker"]
            assert (view["active"], view["served"], view["repository"]) == ("2", ["2"], ["1", "2"])
            switched = client.post("/v1/admin/models/reranker/activate", json={"version": "1"})
            assert switched.status_code == 200, switched.text
            assert (switched.json()["active"], switched.json()["served"]) == ("1", ["1"])
            client.post("/v1/memories", json={"user_id": "u", "text": "I play chess on Sundays"})
            found = client.post("/v1/memories/search", json={
                "user_id": "u", "query": "what does the user think about chess?",
                "rerank": True})
            assert found.status_code == 200, found.text
            assert client.post("/v1/admin/models/reranker/activate",
                               json={"version": "1"}).status_code == 409
            assert client.post("/v1/admin/models/reranker/activate",
                               json={"version": "9"}).status_code == 404
        server.stop()
        server.start()  # Triton loads the newest (2) again; the gateway restores its choice
        with TestClient(create_app(settings)) as client:
            view = client.get("/v1/admin/models").json()["reranker"]
            assert (view["active"], view["served"]) == ("1", ["1"])
