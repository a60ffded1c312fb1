"""Restart durability, and Triton outages: 503 with Retry-After, then recovery."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support import make_triton, settings_for, wait_for

from gateway.app import create_app
from gateway.settings import Settings
from gateway.triton import TritonServer


def test_memories_survive_a_gateway_restart(settings: Settings) -> None:
    texts = ["I love hiking in the Alps", "My sister lives in Lisbon", "Coffee keeps me awake"]
    with TestClient(create_app(settings)) as client:
        client.post("/v1/memories/batch",
                    json={"items": [{"user_id": "alice", "text": t} for t in texts]})
        before = client.post("/v1/memories/search",
                             json={"user_id": "alice", "query": "mountains"}).json()
    with TestClient(create_app(settings)) as client:
        after = client.post("/v1/memories/search",
                            json={"user_id": "alice", "query": "mountains"}).json()
        assert client.app.state.gateway.service.index.size() == 3  # type: ignore[attr-defined]
    # The same memories in the same order; scores equal up to float32 rounding (the rebuilt
    # index holds the same bytes, but a matrix product may sum in another order).
    assert [(r["id"], r["text"]) for r in after["results"]] == \
        [(r["id"], r["text"]) for r in before["results"]]
    for old, new in zip(before["results"], after["results"], strict=True):
        assert new["score"] == pytest.approx(old["score"], abs=1e-6)
        assert new["similarity"] == pytest.approx(old["similarity"], abs=1e-6)
    assert after["results"][0]["text"] == "I love hiking in the Alps"


@pytest.mark.parametrize("query_encoder", ["triton", "auto"])
def test_triton_down_gives_503_then_recovers(tmp_path: Path, query_encoder: str) -> None:
    """Writes need Triton; text searches too, unless the gateway embeds queries itself
    (``auto``), in which case they keep answering while Triton is away."""
    own: TritonServer = make_triton(tmp_path)
    own.start()
    try:
        settings = settings_for(own, tmp_path / "data", query_encoder=query_encoder)
        with TestClient(create_app(settings)) as client:
            assert client.post("/v1/memories", json={"user_id": "a", "text": "first"}
                               ).status_code == 201
            own.stop()
            search = {"user_id": "a", "query": "first"}
            needs_triton = [("/v1/memories", {"user_id": "a", "text": "second"})]
            if query_encoder == "triton":
                needs_triton.append(("/v1/memories/search", search))
            else:
                found = client.post("/v1/memories/search", json=search)
                assert found.status_code == 200, found.text
                assert [r["text"] for r in found.json()["results"]] == ["first"]
            for path, body in needs_triton:
                response = client.post(path, json=body)
                assert response.status_code == 503, response.text
                assert int(response.headers["Retry-After"]) > 0
                assert "unavailable" in response.json()["detail"]
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["triton"] is False
            # Reads that need no model keep working while Triton is away.
            page = client.get("/v1/memories", params={"user_id": "a"}).json()["results"]
            assert [m["text"] for m in page] == ["first"]
            own.start()
            # The gRPC channel reconnects on its own back-off (at most 1 s here).

            def written() -> httpx.Response | None:
                response = client.post("/v1/memories", json={"user_id": "a", "text": "second"})
                return None if response.status_code == 503 else response

            response = wait_for(written, "the gateway to recover", timeout_s=10, poll_s=0.2)
            assert response.status_code == 201, response.text
            assert client.get("/readyz").status_code == 200
            texts = [m["text"] for m in client.get(
                "/v1/memories", params={"user_id": "a"}).json()["results"]]
            assert texts == ["first", "second"]
    finally:
        own.stop()


def test_gateway_starts_without_triton_and_reports_not_ready(tmp_path: Path) -> None:
    absent = make_triton(tmp_path)  # never started
    with TestClient(create_app(settings_for(absent, tmp_path / "data"))) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503 and "Retry-After" in response.headers
        assert client.post("/v1/memories", json={"user_id": "a", "text": "x"}).status_code == 503
