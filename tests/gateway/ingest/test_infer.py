"""``infer: true`` through the real HTTP client path against a scripted OpenAI-compatible
server (started here), and ``async_mode`` with ``GET /v1/events/{id}``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for, wait_for
from support.scripted_llm import ScriptedLLM, Step, answer

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.memory.extraction.prompts import load
from gateway.triton import TritonServer

USER = "alice"
CONVERSATION = [
    {"role": "user", "content": "I moved from Porto to Lisbon last month.", "name": "Alice"},
    {"role": "assistant", "content": "Congratulations on the move!"},
    {"role": "user", "content": "Also, I am vegetarian now."},
]


LLM_TIMEOUT_S = 3.0


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    yield ScriptedLLM()


def gateway(triton: TritonServer, tmp_path: Path, llm: ScriptedLLM,
            **overrides: object) -> Iterator[TestClient]:
    server, url = llm.serve()
    settings = settings_for(triton, tmp_path / "data", llm_base_url=url, llm_model="scripted",
                            # 3 s: the scripted server shares the GIL with the gateway under
                            # test; 0.5 s was missed on a loaded CI machine
                            llm_timeout_s=LLM_TIMEOUT_S, llm_attempts=2, llm_backoff_s=0.01,
                            ingest_queue_backoff_s=0.05, **overrides)
    try:
        with TestClient(create_app(settings)) as client:
            yield client
    finally:
        server.shutdown()


@pytest.fixture
def client(triton: TritonServer, tmp_path: Path, llm: ScriptedLLM) -> Iterator[TestClient]:
    yield from gateway(triton, tmp_path, llm)


@pytest.fixture
def queued_client(triton: TritonServer, tmp_path: Path,
                  llm: ScriptedLLM) -> Iterator[TestClient]:
    yield from gateway(triton, tmp_path, llm, llm_on_failure="queue")


def infer(client: TestClient, messages: list[dict] = CONVERSATION, **body: object) -> dict:
    response = client.post("/v1/memories", json={"user_id": USER, "messages": messages,
                                                 "infer": True, **body})
    assert response.status_code == 201, response.text
    return response.json()


def texts(client: TestClient) -> list[str]:
    page = client.get("/v1/memories", params={"user_id": USER}).json()["results"]
    return sorted(m["text"] for m in page)


def wait_for_event(client: TestClient, event_id: str, done: set[str]) -> dict:
    """The event once its status is in ``done``; fails loudly at the timeout."""

    def ended() -> dict | None:
        event = client.get(f"/v1/events/{event_id}")
        assert event.status_code == 200, event.text
        return event.json() if event.json()["status"] in done else None

    return wait_for(ended, f"event {event_id} to reach {sorted(done)}")


def test_facts_and_decisions_are_applied(client: TestClient, llm: ScriptedLLM) -> None:
    porto = client.post("/v1/memories", json={"user_id": USER, "text": "Alice lives in Porto"})
    llm.script(
        answer({"facts": ["Alice lives in Lisbon", "Alice is vegetarian"]}),
        answer({"decisions": [
            {"event": "UPDATE", "id": "0", "text": "Alice lives in Lisbon"},
            {"event": "ADD", "id": None, "text": "Alice is vegetarian"}]}),
    )
    result = infer(client)
    assert result["inference"] == {"status": "SUCCEEDED", "fallback": None, "detail": None,
                                   "event_id": None}
    assert [(r["event"], r["text"]) for r in result["results"]] == [
        ("UPDATE", "Alice lives in Lisbon"), ("ADD", "Alice is vegetarian")]
    assert result["results"][0]["id"] == porto.json()["id"]
    assert texts(client) == ["Alice is vegetarian", "Alice lives in Lisbon"]
    history = client.get(f"/v1/memories/{porto.json()['id']}/history").json()["results"]
    assert history[-1]["event"] == "UPDATE" and history[-1]["old_text"] == "Alice lives in Porto"
    assert history[-1]["payload"]["source"] == "llm"
    assert history[-1]["payload"]["prompt"] == "v1"
    # what went over the wire: the prompt files, JSON-schema-constrained output
    extract, decide = llm.requests
    assert extract["model"] == "scripted"
    assert extract["messages"][0]["content"] == load().extract_facts
    assert "user (Alice): I moved from Porto to Lisbon" in extract["messages"][1]["content"]
    assert extract["response_format"]["type"] == "json_schema"
    assert extract["response_format"]["json_schema"]["schema"]["required"] == ["facts"]
    assert decide["messages"][0]["content"] == load().decide
    assert '"Alice lives in Porto"' in decide["messages"][1]["content"]
    search = client.post("/v1/memories/search", json={"user_id": USER, "query": "Lisbon"})
    assert search.json()["results"][0]["text"] == "Alice lives in Lisbon"  # re-embedded


def test_delete_and_noop_decisions(client: TestClient, llm: ScriptedLLM) -> None:
    steak = client.post("/v1/memories", json={"user_id": USER, "text": "Alice loves steak"})
    llm.script(answer({"facts": ["Alice is vegetarian", "Alice loves steak"]}),
               answer({"decisions": [
                   {"event": "DELETE", "id": "0", "text": "Alice loves steak"},
                   {"event": "NOOP", "id": "0", "text": "Alice loves steak"}]}))
    result = infer(client)
    assert [r["event"] for r in result["results"]] == ["DELETE", "NOOP"]
    assert client.get(f"/v1/memories/{steak.json()['id']}").status_code == 404


@pytest.mark.parametrize("failure", [
    [Step("text", "{not json"), Step("text", "Sure! Here are the facts: ...")],
    [Step("status", 500), Step("status", 503)],
    [Step("stall", LLM_TIMEOUT_S + 2), Step("stall", LLM_TIMEOUT_S + 2)],
    [answer({"facts": "not a list"}), answer({"unexpected": []})],
], ids=["malformed-json", "5xx", "timeout", "wrong-schema"])
def test_llm_failure_keeps_the_raw_messages(client: TestClient, llm: ScriptedLLM,
                                            failure: list[Step]) -> None:
    llm.script(*failure)
    result = infer(client)
    assert result["inference"]["status"] == "FAILED"
    assert result["inference"]["fallback"] == "raw"
    assert [(r["event"], r["role"]) for r in result["results"]] == [
        ("ADD", "user"), ("ADD", "assistant"), ("ADD", "user")]
    assert texts(client) == sorted(m["content"] for m in CONVERSATION)
    assert len(llm.requests) == 2  # retried once (MEMORY_LLM_ATTEMPTS=2), then gave up
    assert "memory_llm_failures_total{reason=" in client.get("/metrics").text


def test_a_retry_after_a_500_succeeds(client: TestClient, llm: ScriptedLLM) -> None:
    llm.script(Step("status", 500), answer({"facts": ["Alice is vegetarian"]}),
               answer({"decisions": [{"event": "ADD", "id": None,
                                      "text": "Alice is vegetarian"}]}))
    result = infer(client)
    assert result["inference"]["status"] == "SUCCEEDED"
    assert texts(client) == ["Alice is vegetarian"]


def test_made_up_ids_are_never_applied(client: TestClient, llm: ScriptedLLM) -> None:
    porto = client.post("/v1/memories", json={"user_id": USER, "text": "Alice lives in Porto"})
    made_up = {"decisions": [{"event": "ADD", "id": None, "text": "Alice is vegetarian"},
                             {"event": "DELETE", "id": "7", "text": "x"}]}
    uuid_id = {"decisions": [{"event": "UPDATE", "id": porto.json()["id"], "text": "y"}]}
    llm.script(answer({"facts": ["Alice is vegetarian"]}), answer(made_up), answer(uuid_id))
    result = infer(client)
    assert result["inference"]["fallback"] == "raw"
    assert "made_up_id" in result["inference"]["detail"]
    # nothing of the decision set was applied (not even its valid ADD); the raw messages were
    assert texts(client) == sorted([m["content"] for m in CONVERSATION]
                                   + ["Alice lives in Porto"])


def test_queue_fallback_retries_later(queued_client: TestClient, llm: ScriptedLLM) -> None:
    llm.script(Step("status", 500), Step("status", 500))
    result = infer(queued_client)
    assert result["results"] == []
    assert (result["inference"]["status"], result["inference"]["fallback"]) == (
        "FAILED", "queued")
    event_id = result["inference"]["event_id"]
    llm.script(answer({"facts": ["Alice is vegetarian"]}),
               answer({"decisions": [{"event": "ADD", "id": None,
                                      "text": "Alice is vegetarian"}]}))
    event = wait_for_event(queued_client, event_id, {"SUCCEEDED", "FAILED"})
    assert event["status"] == "SUCCEEDED" and event["attempts"] == 2
    assert [(r["event"], r["text"]) for r in event["results"]] == [("ADD", "Alice is vegetarian")]
    assert texts(queued_client) == ["Alice is vegetarian"]


def test_queue_gives_up_to_raw_memories(triton: TritonServer, tmp_path: Path,
                                        llm: ScriptedLLM) -> None:
    for client in gateway(triton, tmp_path, llm, llm_on_failure="queue",
                          ingest_queue_attempts=2):
        result = infer(client)  # the script is empty: every call answers 500
        event = wait_for_event(client, result["inference"]["event_id"], {"FAILED"})
        assert event["inference"]["fallback"] == "raw" and event["error"]
        assert [r["event"] for r in event["results"]] == ["ADD", "ADD", "ADD"]
        assert texts(client) == sorted(m["content"] for m in CONVERSATION)


def test_async_mode_answers_202_and_the_event_tracks_it(client: TestClient,
                                                        llm: ScriptedLLM) -> None:
    accepted = client.post("/v1/memories/batch", json={"async_mode": True, "items": [
        {"user_id": USER, "text": "Alice lives in Porto"},
        {"user_id": USER, "text": "alice lives in porto"}]})
    assert accepted.status_code == 202
    assert accepted.json()["status"] == "PENDING"
    event = wait_for_event(client, accepted.json()["event_id"], {"SUCCEEDED", "FAILED"})
    assert event["status"] == "SUCCEEDED" and event["inference"] is None
    assert [(r["event"], r["item"]) for r in event["results"]] == [("ADD", 0), ("NOOP", 1)]
    assert texts(client) == ["Alice lives in Porto"]
    llm.script(answer({"facts": ["Alice is vegetarian"]}),
               answer({"decisions": [{"event": "ADD", "id": None,
                                      "text": "Alice is vegetarian"}]}))
    later = client.post("/v1/memories", json={"user_id": USER, "messages": CONVERSATION,
                                              "infer": True, "async_mode": True})
    assert later.status_code == 202
    event = wait_for_event(client, later.json()["event_id"], {"SUCCEEDED", "FAILED"})
    assert event["inference"]["status"] == "SUCCEEDED"
    assert texts(client) == ["Alice is vegetarian", "Alice lives in Porto"]


def test_unknown_and_malformed_event_ids(client: TestClient) -> None:
    missing = client.get("/v1/events/01934f4e-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    assert client.get("/v1/events/nope").status_code == 422


def test_events_of_another_tenant_are_not_found(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", auth="required")
    with KeyStore(settings.keys_path) as store:
        keys = {t: store.create(t, KeyScope.WRITE)[0].secret_key for t in ("a", "b")}
    with TestClient(create_app(settings)) as client:
        def call(tenant: str, method: str, path: str, **kwargs: object):
            return client.request(method, path, **kwargs,  # type: ignore[arg-type]
                                  headers={"Authorization": f"Bearer {keys[tenant]}"})

        accepted = call("a", "POST", "/v1/memories", json={
            "user_id": USER, "text": "a's secret", "async_mode": True})
        assert accepted.status_code == 202
        path = f"/v1/events/{accepted.json()['event_id']}"
        wait_for(lambda: call("a", "GET", path).json()["status"] == "SUCCEEDED",
                 "tenant a's event to succeed")
        mine = call("a", "GET", path).json()
        assert mine["results"][0]["user_id"] == USER  # the public id, not the internal one
        other = call("b", "GET", path)
        assert other.status_code == 404 and "not found" in other.json()["detail"]


def test_a_restart_resumes_an_event_cut_off_mid_extraction(
        triton: TritonServer, tmp_path: Path, llm: ScriptedLLM) -> None:
    """The gateway stops while the worker waits on the LLM: the event row stays RUNNING with
    its raw request; the next gateway on the same store puts it back and finishes it once."""
    server, url = llm.serve()
    settings = settings_for(triton, tmp_path / "data", llm_base_url=url, llm_model="scripted",
                            llm_timeout_s=30, llm_attempts=1)
    llm.script(Step("stall", 5.0))
    try:
        with TestClient(create_app(settings)) as client:
            accepted = client.post("/v1/memories", json={
                "user_id": USER, "messages": CONVERSATION, "infer": True, "async_mode": True})
            event_path = f"/v1/events/{accepted.json()['event_id']}"
            wait_for(lambda: llm.requests, "the worker to call the LLM")  # inside the call
            assert client.get(event_path).json()["status"] == "RUNNING"
        llm.script(answer({"facts": ["Alice is vegetarian"]}),
                   answer({"decisions": [{"event": "ADD", "id": None,
                                          "text": "Alice is vegetarian"}]}))
        with TestClient(create_app(settings)) as client:
            event = wait_for_event(client, event_path.rsplit("/", 1)[1],
                                   {"SUCCEEDED", "FAILED"})
            assert event["status"] == "SUCCEEDED"
            assert [r["text"] for r in event["results"]] == ["Alice is vegetarian"]
            assert texts(client) == ["Alice is vegetarian"]
    finally:
        server.shutdown()
