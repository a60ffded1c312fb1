"""Time through the HTTP API: occurred_at and expires_at on add/batch/update, occurrence
filters and ordering, expiry in search and list, and the recency/priority ranking policy."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

STORE_BACKENDS = ("sqlite", "postgres")  # each test on both stores (conftest.py)

MAY = "2023-05-08T13:56:00+02:00"
MAY_UTC = "2023-05-08T11:56:00.000000Z"


def add(client: TestClient, text: str, **fields: object) -> dict:
    response = client.post("/v1/memories", json={"user_id": "alice", "text": text, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def search(client: TestClient, **body: object) -> list[dict]:
    response = client.post("/v1/memories/search", json={"user_id": "alice", **body})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_occurred_at_defaults_to_created_at_and_is_stored_in_utc(client: TestClient) -> None:
    plain = add(client, "plain")
    assert plain["occurred_at"] == plain["created_at"] and plain["expires_at"] is None
    dated = add(client, "dated", occurred_at=MAY, expires_at="2199-01-01T00:00:00Z")
    assert dated["occurred_at"] == MAY_UTC
    assert dated["expires_at"] == "2199-01-01T00:00:00.000000Z"
    assert add(client, "naive", occurred_at="2023-05-08T11:56:00")["occurred_at"] == MAY_UTC
    assert add(client, "day", occurred_at="2023-05-08")["occurred_at"] == (
        "2023-05-08T00:00:00.000000Z")
    batch = client.post("/v1/memories/batch", json={"items": [
        {"user_id": "alice", "text": "b1", "occurred_at": MAY},
        {"user_id": "alice", "text": "b2"}]})
    assert [m["occurred_at"] == MAY_UTC for m in batch.json()["results"]] == [True, False]
    stored = {k: v for k, v in dated.items() if k not in ("event", "item", "match")}
    assert client.get(f"/v1/memories/{dated['id']}").json() == stored


@pytest.mark.parametrize("value", ["1899-12-31T23:59:59Z", "2201-01-01T00:00:00Z", "junk",
                                   "2023-13-01T00:00:00Z", "2023-02-30", 1683504000,
                                   "1683504000", "", "05/08/2023"])
@pytest.mark.parametrize("field", ["occurred_at", "expires_at"])
def test_absurd_or_unparseable_dates_are_refused(client: TestClient, field: str,
                                                 value: object) -> None:
    response = client.post("/v1/memories", json={"user_id": "alice", "text": "x", field: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][-1] == field
    assert client.get("/v1/memories", params={"user_id": "alice"}).json()["results"] == []
    bad_filter = client.post("/v1/memories/search", json={
        "user_id": "alice", "query": "x", "filters": {"occurred_after": value}})
    assert bad_filter.status_code == 422


def test_update_sets_and_clears_time_fields(client: TestClient) -> None:
    memory = add(client, "trip to Lisbon")
    path = f"/v1/memories/{memory['id']}"
    changed = client.patch(path, json={"occurred_at": MAY, "expires_at": "2100-01-01"}).json()
    assert (changed["occurred_at"], changed["expires_at"]) == (
        MAY_UTC, "2100-01-01T00:00:00.000000Z")
    assert changed["text"] == "trip to Lisbon" and changed["embedding_model"]
    cleared = client.patch(path, json={"expires_at": None}).json()
    assert cleared["expires_at"] is None and cleared["occurred_at"] == MAY_UTC
    assert client.patch(path, json={"priority": 7}).json()["occurred_at"] == MAY_UTC
    for body in ({"occurred_at": None}, {}, {"occurred_at": "1000-01-01T00:00:00Z"}):
        response = client.patch(path, json=body)
        assert response.status_code == 422, body
    assert client.get(path).json()["occurred_at"] == MAY_UTC
    # The lexical index follows the date: "May 2023" now finds it by keyword.
    found = search(client, query="May 2023", mode="keyword")
    assert [r["id"] for r in found] == [memory["id"]]


def test_occurrence_filters_in_every_mode(client: TestClient) -> None:
    old = add(client, "dinner with Sam", occurred_at="2022-03-01T19:00:00Z")
    new = add(client, "dinner with Sam again", occurred_at="2024-03-01T19:00:00Z")
    for mode in ("semantic", "keyword", "hybrid"):
        after = search(client, query="dinner with Sam", mode=mode,
                       filters={"occurred_after": "2023-01-01T00:00:00Z"})
        before = search(client, query="dinner with Sam", mode=mode,
                        filters={"occurred_before": "2023-01-01T00:00:00+00:00"})
        assert [r["id"] for r in after] == [new["id"]], mode
        assert [r["id"] for r in before] == [old["id"]], mode


def test_expired_memories_leave_search_and_list_unless_asked(client: TestClient) -> None:
    live = add(client, "the wifi password is hunter2")
    gone = add(client, "the old wifi password was swordfish", expires_at="2001-01-01T00:00:00Z")
    for mode in ("semantic", "keyword", "hybrid"):
        ids = [r["id"] for r in search(client, query="wifi password", mode=mode)]
        assert ids == [live["id"]], mode
        both = {r["id"] for r in search(client, query="wifi password", mode=mode,
                                        include_expired=True)}
        assert both == {live["id"], gone["id"]}, mode
    listed = client.get("/v1/memories", params={"user_id": "alice"}).json()["results"]
    assert [m["id"] for m in listed] == [live["id"]]
    listed = client.get("/v1/memories", params={"user_id": "alice", "include_expired": True})
    assert {m["id"] for m in listed.json()["results"]} == {live["id"], gone["id"]}
    assert client.get(f"/v1/memories/{gone['id']}").status_code == 200  # still readable by id
    client.patch(f"/v1/memories/{gone['id']}", json={"expires_at": None})
    assert len(search(client, query="wifi password", mode="semantic")) == 2


def test_expired_memories_do_not_crowd_out_the_limit(client: TestClient) -> None:
    items = [{"user_id": "alice", "text": f"expired note {i} about tea",
              "expires_at": "2001-01-01T00:00:00Z"} for i in range(30)]
    items.append({"user_id": "alice", "text": "a live note about tea"})
    client.post("/v1/memories/batch", json={"items": items})
    for mode in ("semantic", "keyword", "hybrid"):
        assert [r["text"] for r in search(client, query="tea note", mode=mode, limit=1)] == [
            "a live note about tea"], mode


def test_list_orders_by_occurrence_with_stable_cursors(client: TestClient) -> None:
    days = ["2023-05-03", "2023-05-01", "2023-05-05", "2023-05-01", "2023-05-02"]
    made = [add(client, f"event {i}", occurred_at=day) for i, day in enumerate(days)]
    expected = [m["id"] for m in sorted(made, key=lambda m: (m["occurred_at"], m["id"]))]
    for order, want in (("asc", expected), ("desc", expected[::-1])):
        seen, cursor = [], None
        while True:
            params = {"user_id": "alice", "order_by": "occurred_at", "order": order, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/memories", params=params).json()
            seen += [m["id"] for m in page["results"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == want, order
    id_cursor = client.get("/v1/memories", params={"user_id": "alice", "limit": 1}).json()
    wrong = client.get("/v1/memories", params={"user_id": "alice", "order_by": "occurred_at",
                                               "cursor": id_cursor["next_cursor"]})
    assert wrong.status_code == 422
    assert client.get("/v1/memories", params={"user_id": "alice",
                                              "order_by": "priority"}).status_code == 422


def test_ranking_policy_weighs_recency_and_priority(client: TestClient) -> None:
    old = add(client, "I moved to Berlin", occurred_at="2015-01-01T00:00:00Z", priority=9)
    new = add(client, "I moved to Berlin last month", occurred_at="2026-01-01T00:00:00Z",
              priority=1)
    query = "I moved to Berlin"
    plain = search(client, query=query, mode="semantic")
    assert plain[0]["id"] == old["id"]  # the exact wording wins on relevance alone
    recent = search(client, query=query, mode="semantic",
                    ranking={"recency_half_life_days": 365})
    assert recent[0]["id"] == new["id"]
    assert recent[0]["score"] < 1.0 and recent[0]["similarity"] == pytest.approx(
        [p for p in plain if p["id"] == new["id"]][0]["similarity"], abs=1e-5)
    important = search(client, query=query, ranking={"priority_weight": 1.0})
    assert important[0]["id"] == old["id"]
    for body in ({"priority_weight": 2}, {"recency_half_life_days": -1}, {"decay": 1}):
        response = client.post("/v1/memories/search",
                               json={"user_id": "alice", "query": query, "ranking": body})
        assert response.status_code == 422, body
