"""Archived memories through an embedder version swap: they are re-embedded (so an
``include_archived`` search can score them in the new space) but stay out of the new index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import make_triton, settings_for, wait_for
from support.embedder_versions import add_other_space_version
from support.jobs import listed, wait_done

from gateway.app import create_app
from gateway.triton import TritonServer
from loadtest.repository import copy_latest_as_v1

TEXTS = ["I baked sourdough bread with rye flour on Sunday.",
         "My lasagna recipe needs ricotta and fresh basil.",
         "I burned the risotto because I forgot to stir it.",
         "We made dumplings with pork and cabbage filling.",
         "The pasta machine makes thin tagliatelle.",
         "I roast vegetables at 220 degrees for crispy edges."]
MIGRATION_DEADLINE_S = 180.0


@pytest.fixture
def own_triton(tmp_path: Path) -> Iterator[TritonServer]:
    server = make_triton(tmp_path, repository=copy_latest_as_v1(tmp_path))
    with server:
        yield server


def semantic_ids(client: TestClient, query: str, **body: object) -> list[str]:
    response = client.post("/v1/memories/search", json={
        "user_id": "u", "query": query, "limit": 20, "mode": "semantic", **body})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


def test_archived_memories_follow_a_version_swap_outside_the_index(
        own_triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(own_triton, tmp_path / "data", reembed_batch=4)
    with TestClient(create_app(settings)) as client:
        response = client.post("/v1/memories/batch", json={"dedup": False, "items": [
            {"user_id": "u", "text": t, "occurred_at": f"2024-01-{d + 1:02d}T10:00:00Z"}
            for d, t in enumerate(TEXTS + [f"Later: {t.lower()}" for t in TEXTS])]})
        assert response.status_code == 201, response.text
        job = wait_done(client, client.post("/v1/jobs", json={"kind": "compress",
                                                              "user_id": "u"}).json()["id"])
        assert job["progress"]["archived"] >= 2, job
        archived = [m for m in listed(client, "u", include_archived="true").values()
                    if m["archived_at"] is not None]
        add_other_space_version(Path(own_triton.model_repository))
        assert client.post("/v1/admin/models/embedder/activate",
                           json={"version": "2"}).status_code == 202
        wait_for(lambda: client.get("/v1/admin/models/embedder/migration").json()["state"]
                 == "done", "the migration to finish", MIGRATION_DEADLINE_S, poll_s=0.1)
        everything = listed(client, "u", include_archived="true")
        assert {m["embedding_model"] for m in everything.values()} == {"embedder:2"}
        for source in archived:
            assert source["id"] not in semantic_ids(client, source["text"])
            assert semantic_ids(client, source["text"], include_archived=True)[0] == source["id"]
