"""The real mem0ai client (pinned in the dev extra) drives a running gateway through every
method of its MemoryClient: the calls it makes must succeed unmodified, and what it gets
back must mean what Mem0 means."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from mem0.client.main import MemoryClient
from mem0.exceptions import MemoryError as Mem0Error
from mem0.exceptions import MemoryNotFoundError, ValidationError
from support.mem0 import settled

HIKING = "I love hiking in the Alps"
FOOD = "My favourite dish is spaghetti carbonara"
WORK = "I work as a nurse on night shifts"


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def client(gateway_url: str) -> MemoryClient:
    return MemoryClient(api_key="any-key-works-without-auth", host=gateway_url)


def texts(results: list[dict]) -> list[str]:
    return [r["memory"] for r in results]


def test_handshake_gives_org_and_project(client: MemoryClient) -> None:
    assert client.org_id == "default"
    assert client.project_id == "default"


def test_add_search_get_delete(client: MemoryClient) -> None:
    user = fresh("alice")
    added = client.add(HIKING, user_id=user, metadata={"kind": "hobby"})
    [item] = added["results"]
    assert item["event"] == "ADD" and item["memory"] == HIKING
    assert item["data"] == {"memory": HIKING}
    client.add([{"role": "system", "content": "be brief"},
                {"role": "user", "content": FOOD},
                {"role": "assistant", "content": WORK, "name": "nurse-bot"}], user_id=user)

    found = client.search("outdoor mountain activities", filters={"user_id": user}, top_k=2)
    hits = found["results"]
    assert [h["memory"] for h in hits][0] == HIKING
    assert len(hits) == 2 and hits[0]["score"] >= hits[1]["score"]
    assert hits[0]["user_id"] == user and hits[0]["metadata"] == {"kind": "hobby"}

    memory = client.get(item["id"])
    assert memory["memory"] == HIKING and memory["user_id"] == user
    assert memory["role"] == "user"
    assert len(memory["hash"]) == 32

    everything = client.get_all(filters={"user_id": user})
    assert everything["count"] == 3  # the system message is not a memory
    assistant = next(m for m in everything["results"] if m["memory"] == WORK)
    assert assistant["role"] == "assistant" and assistant["actor_id"] == "nurse-bot"

    assert client.delete(item["id"]) == {"message": "Memory deleted successfully!"}
    with pytest.raises(MemoryNotFoundError):
        client.get(item["id"])
    assert HIKING not in texts(client.search("mountains", filters={"user_id": user})["results"])


def test_typed_options_put_entity_ids_in_filters(client: MemoryClient) -> None:
    from mem0.client.types import AddMemoryOptions

    user = fresh("typed")
    client.add(HIKING, AddMemoryOptions(filters={"user_id": user}, metadata={"n": 1}))
    [memory] = client.get_all(filters={"user_id": user})["results"]
    assert memory["metadata"] == {"n": 1}


def test_update_and_history(client: MemoryClient) -> None:
    user = fresh("bob")
    [item] = client.add(HIKING, user_id=user, metadata={"v": 1})["results"]
    updated = client.update(item["id"], text="I love climbing in the Dolomites")
    assert updated["memory"] == "I love climbing in the Dolomites"
    client.update(item["id"], metadata={"v": 2})
    memory = client.get(item["id"])
    assert memory["metadata"] == {"v": 2} and memory["role"] == "user"  # Mem0 fields kept
    top = client.search("rock climbing in Italy", filters={"user_id": user})["results"][0]
    assert top["id"] == item["id"]

    client.delete(item["id"])
    history = client.history(item["id"])
    assert [h["event"] for h in history] == ["ADD", "UPDATE", "UPDATE", "DELETE"]
    assert history[1]["old_memory"] == HIKING
    assert history[1]["new_memory"] == "I love climbing in the Dolomites"
    assert all(h["memory_id"] == item["id"] for h in history)


def test_get_all_pages(client: MemoryClient) -> None:
    user = fresh("pager")
    for i in range(5):
        client.add(f"fact number {i}", user_id=user, infer=False)
    first = client.get_all(filters={"user_id": user}, page=1, page_size=2)
    assert first["count"] == 5 and first["previous"] is None
    assert texts(first["results"]) == ["fact number 4", "fact number 3"]  # newest first
    assert "page=2" in first["next"]
    last = client.get_all(filters={"user_id": user}, page=3, page_size=2)
    assert texts(last["results"]) == ["fact number 0"] and last["next"] is None
    assert "page=2" in last["previous"]
    assert client.get_all(filters={"user_id": user}, page_size=10)["count"] == 5


def test_filters_across_entities(client: MemoryClient) -> None:
    a, b, agent, run = fresh("ann"), fresh("ben"), fresh("planner"), fresh("run")
    client.add(HIKING, user_id=a, agent_id=agent, metadata={"topic": "travel", "stars": 5})
    client.add(FOOD, user_id=b, metadata={"topic": "food", "stars": 3})
    client.add(WORK, agent_id=agent, run_id=run)  # the agent's own memory, no user

    either = client.search("what do people like", filters={"OR": [{"user_id": a},
                                                                   {"user_id": b}]})
    assert sorted(texts(either["results"])) == sorted([HIKING, FOOD])

    by_agent = client.get_all(filters={"agent_id": agent})
    assert sorted(texts(by_agent["results"])) == sorted([HIKING, WORK])
    own = next(m for m in by_agent["results"] if m["memory"] == WORK)
    assert own["user_id"] is None and own["run_id"] == run

    def found(flt: dict) -> list[str]:
        return sorted(texts(client.get_all(filters=flt)["results"]))

    both = {"user_id": {"in": [a, b]}}
    assert found({"AND": [both, {"metadata": {"topic": "food"}}]}) == [FOOD]
    assert found({"AND": [both, {"metadata": {"topic": {"ne": "food"}}}]}) == [HIKING]
    assert found({"AND": [both, {"NOT": {"metadata": {"topic": "food"}}}]}) == [HIKING]
    assert found({"AND": [both, {"keywords": {"icontains": "SPAGHETTI"}}]}) == [FOOD]
    assert found({"AND": [both, {"metadata": {"stars": {"gte": 4}}}]}) == [HIKING]
    assert found({"user_id": a, "created_at": {"gte": "2000-01-01"}}) == [HIKING]
    assert found({"user_id": a, "created_at": {"lt": "2000-01-01"}}) == []
    assert found({"AND": [{"agent_id": agent}, {"user_id": "*"}]}) == [HIKING]
    assert found({"run_id": run}) == [WORK]

    search = client.search("mountains", filters={"user_id": {"in": [a, b]},
                                                 "metadata": {"topic": "travel"}})
    assert texts(search["results"]) == [HIKING]
    assert set(search["results"][0]) >= {"id", "memory", "score", "metadata", "created_at"}
    narrow = client.search("mountains", filters={"user_id": a}, fields=["memory", "score"])
    assert set(narrow["results"][0]) == {"id", "memory", "score"}


def test_bad_filters_are_validation_errors(client: MemoryClient) -> None:
    with pytest.raises(ValidationError) as bad_field:
        client.search("x", filters={"user_id": "u", "colour": "red"})
    assert "colour" in str(bad_field.value.message)
    with pytest.raises(ValidationError) as no_entity:
        client.get_all(filters={"metadata": {"k": "v"}})
    assert "user_id" in str(no_entity.value.message)
    with pytest.raises(ValidationError):
        client.search("x", filters={"user_id": {"gt": "a"}})
    with pytest.raises(ValidationError):
        client.add(HIKING, user_id="u", metadata={"mem0:app_id": "forged"})


def test_delete_all_with_query_string_quirk(client: MemoryClient) -> None:
    a, b = fresh("del-a"), fresh("del-b")
    client.add(HIKING, user_id=a, agent_id="keeper")
    client.add(FOOD, user_id=a, agent_id="tosser")
    client.add(FOOD, user_id=b)
    # filters arrive as the Python repr of a dict: {'user_id': ..., 'agent_id': ...}
    client.delete_all(filters={"user_id": a, "agent_id": "tosser"})
    assert texts(client.get_all(filters={"user_id": a})["results"]) == [HIKING]
    client.delete_all(user_id=b)
    assert client.get_all(filters={"user_id": b})["count"] == 0
    with pytest.raises(ValidationError):
        client.delete_all()  # no entity: refused rather than deleting a whole tenant


def test_batch_update_and_delete(client: MemoryClient) -> None:
    user = fresh("batch")
    ids = [r["id"] for r in client.add([{"role": "user", "content": t}
                                        for t in (HIKING, FOOD, WORK)], user_id=user)["results"]]
    client.batch_update([{"memory_id": ids[0], "text": "I love sailing"},
                         {"memory_id": ids[1], "metadata": {"checked": True}}])
    assert client.get(ids[0])["memory"] == "I love sailing"
    assert client.get(ids[1])["metadata"] == {"checked": True}

    missing = str(uuid.uuid4())
    with pytest.raises(MemoryNotFoundError):
        client.batch_delete([{"memory_id": ids[2]}, {"memory_id": missing}])
    assert client.get(ids[2])["memory"] == WORK  # all or nothing
    client.batch_delete([{"memory_id": ids[1]}, {"memory_id": ids[2]}])
    assert texts(client.get_all(filters={"user_id": user})["results"]) == ["I love sailing"]


def test_entities_listed_and_deleted(gateway_url: str) -> None:
    # Its own gateway data would be cleaner, but reset() below also proves the listing is
    # complete: afterwards nothing is left for anyone in this (default) tenant.
    client = MemoryClient(api_key="k", host=gateway_url)
    user, agent, app = fresh("ent-user"), fresh("ent-agent"), fresh("ent-app")
    client.add(HIKING, user_id=user, app_id=app)
    client.add(FOOD, agent_id=agent)
    listed = {(e["type"], e["name"]): e["total_memories"] for e in client.users()["results"]}
    assert listed[("user", user)] == 1 and listed[("agent", agent)] == 1
    assert listed[("app", app)] == 1

    client.delete_users(agent_id=agent)
    assert client.get_all(filters={"agent_id": agent})["count"] == 0
    client.delete_users(agent_id=agent)  # idempotent: nothing left is not an error
    assert client.get_all(filters={"app_id": app})["count"] == 1

    client.reset()
    assert client.users()["results"] == []
    with pytest.raises(ValueError, match="No entities"):
        client.delete_users()


@pytest.mark.parametrize("call", [
    lambda c: c.feedback(str(uuid.uuid4()), "POSITIVE"),
    lambda c: c.create_memory_export("{}", user_id="u"),
    lambda c: c.get_memory_export(user_id="u"),
    lambda c: c.get_summary(),
    lambda c: c.get_profile("u"),
    lambda c: c.generate_profile("u"),
    lambda c: c.sample_profiles(),
    lambda c: c.get_profile_job("job"),
    lambda c: c.get_profile_settings(),
    lambda c: c.update_profile_settings(enabled=True),
    lambda c: c.get_project(),
    lambda c: c.update_project(custom_instructions="x"),
    lambda c: c.project.get(),
    lambda c: c.project.create("p"),
    lambda c: c.project.update(custom_instructions="x"),
    lambda c: c.project.delete(),
    lambda c: c.project.get_members(),
    lambda c: c.project.add_member("a@example.com"),
    lambda c: c.project.update_member("a@example.com", "OWNER"),
    lambda c: c.project.remove_member("a@example.com"),
    lambda c: c.get_webhooks("p"),
    lambda c: c.create_webhook("http://127.0.0.1:9/h", "h", "p", ["memory_add"]),
    lambda c: c.update_webhook(1, name="h2"),
    lambda c: c.delete_webhook(1),
])
def test_unsupported_features_answer_501(client: MemoryClient, call) -> None:
    with pytest.raises(Mem0Error) as refused:
        call(client)
    assert refused.value.error_code == "HTTP_501"
    assert "not supported" in refused.value.message


def test_chat_is_refused_by_the_client_itself(client: MemoryClient) -> None:
    with pytest.raises(NotImplementedError):
        client.chat()


def test_mem0ai_1_0_routes(gateway_url: str) -> None:
    """mem0ai 1.0.x (a separate major version, so not installable next to 2.2.1) sends these
    requests, recorded from the real client: add to /v1/memories/, list and search under
    /v2/, top-level entity ids, and the ping's org_id/project_id in every body and query."""
    user = fresh("old")
    ids = {"org_id": "default", "project_id": "default"}
    with httpx.Client(base_url=gateway_url, headers={"Authorization": "Token k"},
                      follow_redirects=False) as http:
        added = http.post("/v1/memories/", json={
            "messages": [{"role": "user", "content": HIKING}], "user_id": user,
            "async_mode": True, "output_format": "v1.1", **ids})
        assert added.status_code == 200, added.text
        assert added.json()["status"] == "PENDING"  # 1.0.x always asks for async_mode
        event = settled(http, added.json()["event_id"], params=ids)
        assert event["status"] == "SUCCEEDED"
        found = http.post("/v2/memories/search/", json={"query": "mountains", "user_id": user,
                                                         "top_k": 3, **ids})
        assert texts(found.json()["results"]) == [HIKING]
        listed = http.post("/v2/memories/", json={"user_id": user, **ids},
                           params={"page": 1, "page_size": 10})
        assert texts(listed.json()["results"]) == [HIKING]
        memory_id = event["results"][0]["id"]
        assert http.get(f"/v1/memories/{memory_id}/", params=ids).json()["memory"] == HIKING
        gone = http.delete("/v1/memories/", params={"user_id": user, **ids})
        assert gone.status_code == 200 and gone.json()["deleted"] == 1


def test_timestamps_and_expiration(client: MemoryClient) -> None:
    user = fresh("when")
    today = datetime.now(UTC).date()
    [old] = client.add(HIKING, user_id=user, timestamp=1_700_000_000,
                       expiration_date=str(today - timedelta(days=1)))["results"]
    [live] = client.add(FOOD, user_id=user, expiration_date=str(today))["results"]  # lasts today

    assert texts(client.get_all(filters={"user_id": user})["results"]) == [FOOD]
    assert texts(client.search("mountains", filters={"user_id": user})["results"]) == [FOOD]
    shown = client.get_all(filters={"user_id": user}, show_expired=True)["results"]
    assert sorted(texts(shown)) == sorted([HIKING, FOOD])
    expired = client.get(old["id"])
    assert datetime.fromisoformat(expired["timestamp"]).timestamp() == 1_700_000_000
    assert expired["expiration_date"] == str(today - timedelta(days=1))
    assert client.get(live["id"])["expiration_date"] == str(today)
    before_2024 = {"user_id": user, "timestamp": {"lt": "2024-01-01"}}
    assert texts(client.get_all(filters=before_2024, show_expired=True)["results"]) == [HIKING]

    client.update(old["id"], expiration_date=None)  # an explicit null clears it
    assert HIKING in texts(client.search("mountains", filters={"user_id": user})["results"])
    client.update(old["id"], timestamp=1_600_000_000)
    assert datetime.fromisoformat(client.get(old["id"])["timestamp"]).timestamp() == 1.6e9


def test_keyword_search_modes(client: MemoryClient) -> None:
    user = fresh("kw")
    client.add([{"role": "user", "content": t} for t in
                (HIKING, FOOD, "The router's serial number is XQ-7731-B")], user_id=user)
    for keyword_search in (True, False, None):
        found = client.search("serial XQ-7731-B", filters={"user_id": user},
                              keyword_search=keyword_search, top_k=1)
        assert texts(found["results"]) == ["The router's serial number is XQ-7731-B"]


def test_big_filter_work_runs_off_the_event_loop(client: MemoryClient,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Past INLINE_ITEMS, filtering and sorting run in a worker thread: same answers."""
    from gateway.api.mem0 import finder

    user = fresh("threaded")
    client.add([{"role": "user", "content": t} for t in (HIKING, FOOD, WORK)], user_id=user,
               metadata={"n": 1})
    monkeypatch.setattr(finder, "INLINE_ITEMS", 1)
    flt = {"user_id": user, "metadata": {"n": {"in": [1]}}}
    assert sorted(texts(client.get_all(filters=flt)["results"])) == sorted([HIKING, FOOD, WORK])
    assert texts(client.search("mountains", filters=flt, top_k=1)["results"]) == [HIKING]
