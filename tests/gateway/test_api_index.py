"""The index engine through the whole API: ANN graphs, the hot tier twin, the RAM budget."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from support import settings_for, wait_for

from gateway.app import create_app
from gateway.triton import TritonServer
from loadtest.corpus import sentences


def wait_for_graph(client: TestClient) -> None:
    index = client.app.state.gateway.service.index  # type: ignore[attr-defined]
    wait_for(lambda: index.stats().graphs > 0, "a graph to be built")


def test_large_user_is_searched_through_a_graph(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", index_backend="hnsw", ann_threshold=200)
    texts = sentences(300, seed=4)
    with TestClient(create_app(settings)) as client:
        items = [{"user_id": "kb", "text": t} for t in texts]
        made = client.post("/v1/memories/batch", json={"items": items}).json()["results"]
        client.post("/v1/memories", json={"user_id": "small", "text": texts[0]})
        wait_for_graph(client)
        index = client.app.state.gateway.service.index  # type: ignore[attr-defined]
        assert index.stats().graph_vectors == 300  # the small user stays exact
        for probe in (3, 150, 299):
            found = client.post("/v1/memories/search",
                                json={"user_id": "kb", "query": texts[probe], "limit": 3}).json()
            assert found["results"][0]["id"] == made[probe]["id"]
        client.delete(f"/v1/memories/{made[3]['id']}")
        found = client.post("/v1/memories/search",
                            json={"user_id": "kb", "query": texts[3], "limit": 10}).json()
        assert made[3]["id"] not in {r["id"] for r in found["results"]}
        assert "memory_index_graphs 1.0" in client.get("/metrics").text
    with TestClient(create_app(settings)) as client:  # restart: graph rebuilt from the store
        wait_for_graph(client)
        found = client.post("/v1/memories/search",
                            json={"user_id": "kb", "query": texts[150], "limit": 1}).json()
        assert found["results"][0]["id"] == made[150]["id"]


def test_hot_tier_twin_serves_repeated_searches(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", hot_tier="host", vram_budget_mb=1)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/memories", json={"user_id": "a", "text": "I love hiking in the Alps"})
        for _ in range(3):
            found = client.post("/v1/memories/search", json={"user_id": "a", "query": "hiking"})
            assert found.json()["results"][0]["text"] == "I love hiking in the Alps"
        text = client.get("/metrics").text
        assert 'memory_hot_tier{stat="promotions"} 1.0' in text
        assert 'memory_hot_tier{stat="hits"} 1.0' in text


def test_ram_budget_evicts_and_reloads_partitions_from_the_store(
    triton: TritonServer, tmp_path: Path
) -> None:
    settings = settings_for(triton, tmp_path / "data", ram_budget_mb=1)  # ~40 small partitions
    users = [f"user-{i}" for i in range(80)]
    with TestClient(create_app(settings)) as client:
        items = [{"user_id": u, "text": "My favourite food is sushi"} for u in users]
        items += [{"user_id": u, "text": "I ride my bicycle to work every day"} for u in users]
        client.post("/v1/memories/batch", json={"items": items})
        for user in users:
            found = client.post("/v1/memories/search",
                                json={"user_id": user, "query": "bike commute", "limit": 5}).json()
            assert found["results"][0]["text"] == "I ride my bicycle to work every day"
            assert {r["user_id"] for r in found["results"]} == {user}
        index = client.app.state.gateway.service.index  # type: ignore[attr-defined]
        assert index.ram.evictions > 0 and index.ram.total <= 1024 * 1024
        evicted = next(u for u in users if index.needs_load(u))
        client.post("/v1/memories", json={"user_id": evicted, "text": "added while evicted"})
        found = client.post("/v1/memories/search", json={
            "user_id": evicted, "query": "added while evicted", "limit": 1}).json()
        assert found["results"][0]["text"] == "added while evicted"
    with TestClient(create_app(settings)) as client:  # restart: nothing loaded until searched
        index = client.app.state.gateway.service.index  # type: ignore[attr-defined]
        assert index.size() == 0
        found = client.post("/v1/memories/search",
                            json={"user_id": users[0], "query": "japanese dish", "limit": 1}).json()
        assert found["results"][0]["text"] == "My favourite food is sushi"
