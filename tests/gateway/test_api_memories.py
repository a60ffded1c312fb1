"""Every /v1/memories route against the real Triton embedder and a real SQLite file."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

STORE_BACKENDS = ("sqlite", "postgres")  # each test on both stores (conftest.py)

UNRELATED = [
    "My favourite dish is spaghetti carbonara",
    "The quarterly tax report is due on Friday",
    "I switched my phone plan to a cheaper provider",
    "Our cat sleeps on the laptop keyboard",
    "The printer on floor three is out of toner",
    "I prefer window seats on long flights",
]


def add(client: TestClient, **body: object) -> dict:
    response = client.post("/v1/memories", json={"user_id": "alice", **body})
    assert response.status_code == 201, response.text
    return response.json()


def search(client: TestClient, **body: object) -> list[dict]:
    response = client.post("/v1/memories/search", json={"user_id": "alice", **body})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_add_returns_the_stored_memory(client: TestClient) -> None:
    memory = add(client, text="I love hiking in the Alps", agent_id="a1", run_id="r1",
                 metadata={"kind": "preference"}, priority=8)
    assert uuid.UUID(memory["id"]).version == 7
    assert memory["text"] == "I love hiking in the Alps"
    assert (memory["agent_id"], memory["run_id"], memory["priority"]) == ("a1", "r1", 8)
    assert memory["metadata"] == {"kind": "preference"}
    assert memory["embedding_model"].startswith("embedder:")
    assert memory["created_at"].endswith("Z") and memory["created_at"] == memory["updated_at"]
    assert memory.pop("event") == "ADD" and memory.pop("item") == 0 and not memory.pop("match")
    assert client.get(f"/v1/memories/{memory['id']}").json() == memory


def test_defaults(client: TestClient) -> None:
    memory = add(client, text="plain")
    assert (memory["priority"], memory["metadata"], memory["agent_id"]) == (5, {}, None)


def test_semantic_search_finds_the_meaningful_memory_first(client: TestClient) -> None:
    for text in UNRELATED:
        add(client, text=text)
    hiking = add(client, text="I love hiking in the Alps")
    results = search(client, query="outdoor mountain activities", limit=3)
    assert results[0]["id"] == hiking["id"]
    assert len(results) == 3
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1
    assert set(results[0]) >= {"id", "text", "score", "user_id", "agent_id", "run_id",
                               "metadata", "priority", "created_at", "updated_at"}


def test_search_is_scoped_to_the_user(client: TestClient) -> None:
    add(client, text="I love hiking in the Alps")
    response = client.post("/v1/memories/search",
                           json={"user_id": "bob", "query": "mountain hiking"})
    assert response.json()["results"] == []


def test_search_filters_and_threshold(client: TestClient) -> None:
    a = add(client, text="Deploy failed because the disk was full", agent_id="ops",
            metadata={"kind": "incident", "sev": 2})
    b = add(client, text="Deploy succeeded after clearing the disk", agent_id="ops", run_id="r9",
            metadata={"kind": "incident", "sev": 3})
    add(client, text="Deploy day is Tuesday", agent_id="planner", metadata={"kind": "fact"})
    query = "why did the deployment fail?"
    assert {r["id"] for r in search(client, query=query, filters={"agent_id": "ops"})} == {
        a["id"], b["id"]}
    assert [r["id"] for r in search(client, query=query, filters={"run_id": "r9"})] == [b["id"]]
    assert [r["id"] for r in search(client, query=query, filters={"metadata": {"sev": 2}})] == [
        a["id"]]
    after = search(client, query=query, filters={"created_after": b["created_at"]})
    assert a["id"] not in {r["id"] for r in after} and b["id"] in {r["id"] for r in after}
    everything = search(client, query=query, mode="semantic")  # ordered by cosine
    cut = everything[1]["score"]
    assert [r["id"] for r in search(client, query=query, threshold=cut, mode="semantic")] == [
        r["id"] for r in everything[:2]]
    assert search(client, query=query, filters={"metadata": {"kind": "nope"}}) == []


def active_dim(client: TestClient) -> int:
    return client.app.state.gateway.service.models.info.dim  # type: ignore[attr-defined]


def test_client_supplied_embeddings_are_normalised_and_searchable(client: TestClient) -> None:
    probe = add(client, text="probe")
    vector = [0.0] * active_dim(client)
    vector[0] = 3.0
    mine = add(client, text="custom vector", embedding=vector)
    results = search(client, embedding=vector, limit=2)
    assert results[0]["id"] == mine["id"]
    assert abs(results[0]["score"] - 1.0) < 1e-5  # normalised on the server: cosine 1, not 9
    assert probe["id"] in {r["id"] for r in results}


def test_batch_add_keeps_order_and_embeds(client: TestClient) -> None:
    texts = [f"memory number {i} about topic {i % 3}" for i in range(25)]
    response = client.post("/v1/memories/batch",
                           json={"items": [{"user_id": "alice", "text": t} for t in texts]})
    assert response.status_code == 201, response.text
    results = response.json()["results"]
    assert [r["text"] for r in results] == texts
    ids = [r["id"] for r in results]
    assert ids == sorted(ids)  # server ids follow input order
    found = search(client, query="memory number 17 about topic 2", limit=1)
    assert found[0]["text"] == texts[17]


def test_paging_is_stable_and_complete(client: TestClient) -> None:
    items = [{"user_id": "alice", "text": f"note {i}"} for i in range(23)]
    made = client.post("/v1/memories/batch", json={"items": items}).json()["results"]
    add(client, text="someone else's", user_id="bob")
    seen, cursor = [], None
    while True:
        params = {"user_id": "alice", "limit": 5} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/memories", params=params).json()
        seen += [m["id"] for m in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        client.post("/v1/memories", json={"user_id": "carol", "text": "noise while paging"})
    assert seen == [m["id"] for m in made]


def test_update_re_embeds_new_text_and_records_history(client: TestClient) -> None:
    memory = add(client, text="I live in Berlin", metadata={"v": 1})
    response = client.patch(f"/v1/memories/{memory['id']}",
                            json={"text": "I moved to a small fishing village in Norway"})
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["metadata"] == {"v": 1} and updated["updated_at"] > memory["updated_at"]
    assert updated["created_at"] == memory["created_at"]
    add(client, text="I enjoy playing chess online")
    assert search(client, query="Scandinavian coast", limit=1)[0]["id"] == memory["id"]
    assert search(client, query="Scandinavian coast", limit=1)[0]["text"].startswith("I moved")
    client.patch(f"/v1/memories/{memory['id']}", json={"priority": 9, "metadata": {"v": 2}})
    history = client.get(f"/v1/memories/{memory['id']}/history").json()["results"]
    assert [e["event"] for e in history] == ["ADD", "UPDATE", "UPDATE"]
    assert history[1]["old_text"] == "I live in Berlin"
    assert history[2]["payload"] == {"metadata": {"v": 2}, "priority": 9}


def test_delete_one_and_delete_all(client: TestClient) -> None:
    first = add(client, text="to forget")
    add(client, text="to keep")
    assert client.delete(f"/v1/memories/{first['id']}").status_code == 204
    assert client.get(f"/v1/memories/{first['id']}").status_code == 404
    assert client.delete(f"/v1/memories/{first['id']}").status_code == 404
    assert [r["text"] for r in search(client, query="forget")] == ["to keep"]
    assert [e["event"] for e in client.get(
        f"/v1/memories/{first['id']}/history").json()["results"]] == ["ADD", "DELETE"]
    add(client, text="another one")
    assert client.delete("/v1/memories", params={"user_id": "alice"}).json() == {"deleted": 2}
    assert search(client, query="anything") == []
    assert client.get("/v1/memories", params={"user_id": "alice"}).json()["results"] == []


def test_health_readiness_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    add(client, text="counted")
    text = client.get("/metrics").text
    assert 'memory_http_requests_total{method="POST",route="/v1/memories",status="201"}' in text
    assert "memory_triton_request_seconds_bucket" in text
    assert "memory_index_vectors 1.0" in text
    assert "memory_index_graphs 0.0" in text  # one memory: exact, no graph
    assert "memory_search_mean_batch" in text
