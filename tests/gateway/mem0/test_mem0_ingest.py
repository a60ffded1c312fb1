"""Mem0 adds take the service's ingest path: normalised text, dedup events per memory
(ADD/UPDATE/NOOP), ``async_mode`` answered PENDING with an event, and ``infer`` through the
LLM when one is configured (a scripted OpenAI-compatible server started here)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mem0.client.main import MemoryClient
from support import settings_for
from support.mem0 import settled
from support.scripted_llm import ScriptedLLM, answer
from support.servers import serving

from gateway.triton import TritonServer

HIKING = "I love hiking in the Alps"


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def client(gateway_url: str) -> MemoryClient:
    return MemoryClient(api_key="k", host=gateway_url)


@pytest.fixture(scope="module")
def api(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, headers={"Authorization": "Token k"}) as http:
        yield http


def listed(client: MemoryClient, user: str) -> list[dict]:
    return client.get_all(filters={"user_id": user})["results"]


def test_adds_are_deduplicated_with_an_event_each(client: MemoryClient) -> None:
    user = fresh("dedup")
    [first] = client.add(HIKING, user_id=user, metadata={"v": 1})["results"]
    assert first["event"] == "ADD"
    [again] = client.add("  i love hiking in the ALPS! ", user_id=user,
                         metadata={"v": 1})["results"]
    assert (again["event"], again["id"]) == ("NOOP", first["id"])
    [changed] = client.add(HIKING, user_id=user, metadata={"v": 2})["results"]
    assert (changed["event"], changed["id"]) == ("UPDATE", first["id"])
    [memory] = listed(client, user)
    assert memory["metadata"] == {"v": 2} and memory["memory"] == HIKING
    assert [h["event"] for h in client.history(first["id"])] == ["ADD", "UPDATE"]


def test_messages_are_normalised_and_keep_role_and_speaker(client: MemoryClient) -> None:
    user = fresh("norm")
    results = client.add([
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "I  moved\u00a0to   Lisbon", "name": "Ana"},
        {"role": "assistant", "content": "Cafe\u0301 tips coming up"},
        {"role": "user", "content": "I moved to Lisbon"},  # a duplicate inside the batch
    ], user_id=user)["results"]
    assert [(r["event"], r["memory"], r["role"], r["actor_id"]) for r in results] == [
        ("ADD", "I moved to Lisbon", "user", "Ana"),
        ("ADD", "Caf\u00e9 tips coming up", "assistant", None),
        ("NOOP", "I moved to Lisbon", "user", "Ana")]
    shown = {m["memory"]: m for m in listed(client, user)}
    assert set(shown) == {"I moved to Lisbon", "Caf\u00e9 tips coming up"}
    assert (shown["I moved to Lisbon"]["role"], shown["I moved to Lisbon"]["actor_id"]) == (
        "user", "Ana")
    assert shown["I moved to Lisbon"]["metadata"] == {}  # role is a field, not metadata


def test_async_mode_answers_pending_and_the_event_follows(client: MemoryClient,
                                                          api: httpx.Client) -> None:
    user = fresh("async")
    queued = client.add(HIKING, user_id=user, async_mode=True)
    assert queued["status"] == "PENDING" and "results" not in queued
    event = settled(api, queued["event_id"])
    assert event["status"] == "SUCCEEDED" and event["event_type"] == "ADD"
    assert [(r["event"], r["memory"]) for r in event["results"]] == [("ADD", HIKING)]
    assert [m["memory"] for m in listed(client, user)] == [HIKING]
    missing = api.get(f"/v1/event/{uuid.uuid4()}/")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]


def test_infer_without_an_llm(client: MemoryClient, api: httpx.Client) -> None:
    """Unset: stored as given (Mem0's default is infer, done when an LLM is configured);
    ``infer: true`` on this server is a clear 422 and stores nothing."""
    user = fresh("noinfer")
    refused = api.post("/v3/memories/add/", json={
        "messages": [{"role": "user", "content": HIKING}], "user_id": user, "infer": True})
    assert refused.status_code == 422 and "not configured" in refused.json()["detail"]
    assert listed(client, user) == []
    [raw] = client.add(HIKING, user_id=user)["results"]
    assert raw["event"] == "ADD" and raw["memory"] == HIKING


@pytest.fixture
def llm_gateway(triton: TritonServer, tmp_path: Path) -> Iterator[tuple[str, ScriptedLLM]]:
    llm = ScriptedLLM()
    server, url = llm.serve()
    settings = settings_for(triton, tmp_path / "data", llm_base_url=url, llm_model="scripted",
                            llm_timeout_s=3.0, llm_attempts=1, llm_backoff_s=0.01)
    try:
        with serving(settings) as gateway_url:
            yield gateway_url, llm
    finally:
        server.shutdown()


def test_infer_extracts_facts_through_the_llm(llm_gateway: tuple[str, ScriptedLLM]) -> None:
    url, llm = llm_gateway
    client = MemoryClient(api_key="k", host=url)
    user = fresh("infer")
    [porto] = client.add("Ana lives in Porto", user_id=user, infer=False)["results"]
    llm.script(answer({"facts": ["Ana lives in Lisbon", "Ana is vegetarian"]}),
               answer({"decisions": [
                   {"event": "UPDATE", "id": "0", "text": "Ana lives in Lisbon"},
                   {"event": "ADD", "id": None, "text": "Ana is vegetarian"}]}))
    added = client.add([{"role": "user", "content": "I moved to Lisbon, and I am vegetarian "
                                                    "now", "name": "Ana"}], user_id=user)
    assert added["inference"]["status"] == "SUCCEEDED"
    assert [(r["event"], r["memory"]) for r in added["results"]] == [
        ("UPDATE", "Ana lives in Lisbon"), ("ADD", "Ana is vegetarian")]
    assert added["results"][0]["id"] == porto["id"]
    assert sorted(m["memory"] for m in listed(client, user)) == [
        "Ana is vegetarian", "Ana lives in Lisbon"]
    assert "I moved to Lisbon" in llm.requests[0]["messages"][1]["content"]


def test_a_message_is_found_by_what_its_neighbours_say(client: MemoryClient,
                                                       api: httpx.Client) -> None:
    """Like /v1 messages: each memory keeps its neighbouring messages as keyword context."""
    user = fresh("context")
    client.add([{"role": "user", "content": "Did you enjoy the trip to Lisbon?"},
                {"role": "assistant", "content": "Yes, every single day of it"}], user_id=user)
    found = api.post("/v1/memories/search", json={"user_id": user, "query": "Lisbon",
                                                  "mode": "keyword"}).json()["results"]
    assert "Yes, every single day of it" in [hit["text"] for hit in found]
