"""Conversation ingest and duplicate handling through /v1/memories, on the real embedder."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

USER = "alice"


def add(client: TestClient, **body: object) -> dict:
    response = client.post("/v1/memories", json={"user_id": USER, **body})
    assert response.status_code == 201, response.text
    return response.json()


def batch(client: TestClient, items: list[dict], **options: object) -> list[dict]:
    response = client.post("/v1/memories/batch", json={
        "items": [{"user_id": USER, **item} for item in items], **options})
    assert response.status_code == 201, response.text
    return response.json()["results"]


def listed(client: TestClient, user: str = USER) -> list[dict]:
    response = client.get("/v1/memories", params={"user_id": user})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_messages_become_memories_with_role_speaker_and_time(client: TestClient) -> None:
    results = add(client, agent_id="travel", messages=[
        {"role": "system", "content": "You are a helpful travel agent."},
        {"role": "user", "content": "I\u2019m flying to Lisbon on  May 8th.\x00",
         "name": "Alice", "timestamp": "2023-05-08T13:56:00+02:00"},
        {"role": "assistant", "content": "   \n"},
        {"role": "assistant", "content": "Noted: Lisbon, 8 May. Window seat as usual?"},
    ])["results"]
    assert [r["event"] for r in results] == ["ADD", "ADD"]
    user, assistant = results
    assert user["text"] == "I\u2019m flying to Lisbon on May 8th."  # NFC, collapsed, stripped
    assert (user["role"], user["speaker"], user["agent_id"]) == ("user", "Alice", "travel")
    assert user["occurred_at"] == "2023-05-08T11:56:00.000000Z"
    assert (assistant["role"], assistant["speaker"]) == ("assistant", None)
    assert assistant["occurred_at"] == assistant["created_at"]  # no timestamp: when stored
    assert "role" not in user["metadata"]  # fields of their own, not loose metadata
    stored = {m["id"]: m for m in listed(client)}
    assert stored[user["id"]]["role"] == "user" and stored[user["id"]]["speaker"] == "Alice"
    found = client.post("/v1/memories/search", json={"user_id": USER, "query": "Lisbon trip"})
    assert found.json()["results"][0]["role"] in ("user", "assistant")


def test_nothing_to_remember_is_a_422_that_stores_nothing(client: TestClient) -> None:
    only_system = client.post("/v1/memories", json={"user_id": USER, "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "\x00 \t"}]})
    assert only_system.status_code == 422
    assert only_system.json()["detail"][0]["loc"] == ["body", "messages"]
    controls = client.post("/v1/memories", json={"user_id": USER, "text": "\x01\x02"})
    assert controls.status_code == 422 and controls.json()["detail"][0]["loc"] == ["body", "text"]
    for body in ({"user_id": USER}, {"user_id": USER, "text": "x", "messages": [
            {"role": "user", "content": "y"}]}, {"user_id": USER, "messages": [
            {"role": "User!", "content": "y"}]}):
        assert client.post("/v1/memories", json=body).status_code == 422
    bad_item = client.post("/v1/memories/batch", json={"items": [
        {"user_id": USER, "text": "fine"}, {"user_id": USER, "text": "x", "async_mode": True}]})
    assert bad_item.status_code == 422
    assert bad_item.json()["detail"][0]["loc"] == ["body", "items", 1, "async_mode"]
    assert listed(client) == []


def test_exact_and_near_duplicates_are_noops(client: TestClient) -> None:
    first = add(client, text="My uncle lives in Toronto.")
    assert first["event"] == "ADD" and first["match"] is None
    again = add(client, text="  my UNCLE lives in   toronto. ")
    assert (again["event"], again["match"], again["id"]) == ("NOOP", "exact", first["id"])
    typo = add(client, text="My uncle lives in Torotno!")
    assert (typo["event"], typo["match"], typo["id"]) == ("NOOP", "near", first["id"])
    assert typo["text"] == "My uncle lives in Toronto."  # the stored text stays
    assert len(listed(client)) == 1
    history = client.get(f"/v1/memories/{first['id']}/history").json()["results"]
    assert [e["event"] for e in history] == ["ADD"]  # a NOOP changes nothing
    metrics = client.get("/metrics").text
    assert 'memory_ingest_results_total{event="NOOP",source="raw"} 2.0' in metrics
    assert 'memory_ingest_results_total{event="ADD",source="raw"} 1.0' in metrics


def test_look_alikes_and_other_scopes_are_added(client: TestClient) -> None:
    monday = add(client, text="I have a meeting with Ben on Monday at 3 pm.")
    for text in ("I have a meeting with Ben on Tuesday at 3 pm.",
                 "I have a meeting with Ben on Monday at 6 pm.",
                 "I have no meeting with Ben on Monday at 3 pm."):
        assert add(client, text=text)["event"] == "ADD", text
    other_agent = add(client, text=monday["text"], agent_id="calendar")
    other_user = client.post("/v1/memories", json={"user_id": "bob", "text": monday["text"]})
    assert other_agent["event"] == "ADD" and other_user.json()["event"] == "ADD"
    assert add(client, text=monday["text"], agent_id="calendar")["id"] == other_agent["id"]
    assert len(listed(client)) == 5


def test_a_duplicate_with_new_metadata_priority_or_time_is_an_update(client: TestClient) -> None:
    first = add(client, text="I prefer window seats", metadata={"topic": "travel"}, priority=3,
                occurred_at="2023-05-01T00:00:00Z")
    same = add(client, text="I prefer window seats", metadata={"topic": "travel"})
    assert same["event"] == "NOOP" and same["priority"] == 3  # no priority given: kept
    updated = add(client, text="I prefer window seats!", metadata={"source": "chat"},
                  priority=7, occurred_at="2023-06-01T00:00:00Z")
    assert (updated["event"], updated["id"]) == ("UPDATE", first["id"])
    assert updated["metadata"] == {"topic": "travel", "source": "chat"}
    assert updated["priority"] == 7 and updated["occurred_at"].startswith("2023-06-01")
    assert updated["text"] == "I prefer window seats"
    earlier = add(client, text="I prefer window seats", occurred_at="2022-01-01T00:00:00Z")
    assert earlier["event"] == "NOOP"  # an older mention does not move the time back
    history = client.get(f"/v1/memories/{first['id']}/history").json()["results"]
    assert [e["event"] for e in history] == ["ADD", "UPDATE"]
    assert history[1]["payload"]["reason"] == "duplicate"
    assert history[1]["payload"]["priority"] == 7
    assert client.get(f"/v1/memories/{first['id']}").json()["priority"] == 7


def test_dedup_false_opts_out(client: TestClient) -> None:
    first = add(client, text="Ping the on-call engineer")
    assert add(client, text="Ping the on-call engineer", dedup=False)["event"] == "ADD"
    results = batch(client, [{"text": "Ping the on-call engineer"}], dedup=False)
    assert results[0]["event"] == "ADD"
    per_item = batch(client, [{"text": "Ping the on-call engineer", "dedup": True}],
                     dedup=False)
    assert per_item[0]["event"] == "NOOP" and per_item[0]["id"] == first["id"]
    assert len(listed(client)) == 3


def test_duplicates_inside_one_batch(client: TestClient) -> None:
    results = batch(client, [
        {"text": "The billing deploy failed because of a full disk."},
        {"text": "the billing deploy failed because of a full disk.", "priority": 9},
        {"text": "The billing deploy failed because of a full disk!"},
        {"text": "The search deploy failed because of a full disk."},
        {"messages": [{"role": "user", "content": "Note: the billing deploy failed because "
                                                  "of a full disk"}]},
    ])
    assert [r["event"] for r in results] == ["ADD", "UPDATE", "NOOP", "ADD", "NOOP"]
    assert [r["item"] for r in results] == [0, 1, 2, 3, 4]
    assert len({results[i]["id"] for i in (0, 1, 2, 4)}) == 1
    stored = listed(client)
    assert len(stored) == 2
    billing = next(m for m in stored if m["id"] == results[0]["id"])
    assert billing["priority"] == 9  # the in-batch update folded into the add
    history = client.get(f"/v1/memories/{billing['id']}/history").json()["results"]
    assert [e["event"] for e in history] == ["ADD"]


def test_expired_memories_are_not_matched(client: TestClient) -> None:
    old = add(client, text="Door code is 4711", expires_at="2001-01-01T00:00:00Z")
    new = add(client, text="Door code is 4711")
    assert new["event"] == "ADD" and new["id"] != old["id"]


def test_concurrent_adds_of_one_text_store_it_once(client: TestClient) -> None:
    def post(_: int) -> dict:
        return client.post("/v1/memories", json={"user_id": "carol",
                                                 "text": "The wifi password changed"}).json()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, range(8)))
    assert sorted(a["event"] for a in answers) == ["ADD"] + ["NOOP"] * 7
    assert len({a["id"] for a in answers}) == 1
    assert len(listed(client, "carol")) == 1


def test_batch_limit_counts_memories_not_items(client: TestClient) -> None:
    messages = [{"role": "user", "content": f"fact number {i}"} for i in range(200)]
    response = client.post("/v1/memories/batch", json={
        "items": [{"user_id": USER, "messages": messages}] * 6})
    assert response.status_code == 422
    assert "at most 1000" in response.json()["detail"][0]["msg"]
    assert listed(client) == []


def test_infer_without_an_llm_is_refused_and_stores_nothing(client: TestClient) -> None:
    single = client.post("/v1/memories", json={"user_id": USER, "text": "x", "infer": True})
    assert single.status_code == 422 and single.json()["detail"][0]["loc"] == ["body", "infer"]
    assert "MEMORY_LLM_BASE_URL" in single.json()["detail"][0]["msg"]
    many = client.post("/v1/memories/batch", json={"items": [{"user_id": USER, "text": "x"}],
                                                   "infer": True, "async_mode": True})
    assert many.status_code == 422
    assert listed(client) == []
