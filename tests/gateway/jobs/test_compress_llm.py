"""The compress job with an LLM configured: the summary text is the model's answer (real HTTP
client against a local scripted OpenAI-compatible server); when the model fails, the
extractive summary stands in and the history says why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for
from support.jobs import listed, wait_done
from support.scripted_llm import ScriptedLLM, Step, answer

from gateway.app import create_app
from gateway.triton import TritonServer

TEXTS = ["I baked sourdough bread with rye flour on Sunday.",
         "My lasagna recipe needs ricotta and fresh basil.",
         "We made dumplings with pork and cabbage filling.",
         "The pasta machine makes thin tagliatelle."]


@pytest.fixture
def llm_client(triton: TritonServer, tmp_path: Path) -> Iterator[tuple[TestClient, ScriptedLLM]]:
    llm = ScriptedLLM()
    server, url = llm.serve()
    settings = settings_for(triton, tmp_path / "data", llm_base_url=url, llm_model="scripted",
                            llm_timeout_s=3.0, llm_attempts=2, llm_backoff_s=0.01)
    try:
        with TestClient(create_app(settings)) as client:
            yield client, llm
    finally:
        server.shutdown()


def old_memories(client: TestClient, user: str) -> None:
    dates = [f"2024-01-{d + 1:02d}T10:00:00Z" for d in range(len(TEXTS) * 2)]
    response = client.post("/v1/memories/batch", json={"dedup": False, "items": [
        {"user_id": user, "text": t, "occurred_at": d}
        for t, d in zip(TEXTS + [f"{t} (again, later)" for t in TEXTS], dates, strict=True)]})
    assert response.status_code == 201, response.text


def compress(client: TestClient, user: str) -> dict:
    job = wait_done(client, client.post("/v1/jobs", json={"kind": "compress",
                                                          "user_id": user}).json()["id"])
    assert job["status"] == "done" and job["progress"]["summaries"] == 1, job
    summary = next(m for m in listed(client, user).values() if m["sources"])
    return client.get(f"/v1/memories/{summary['id']}/history").json()["results"][0] | {
        "summary": summary}


def test_the_summary_is_the_models_answer(
        llm_client: tuple[TestClient, ScriptedLLM]) -> None:
    client, llm = llm_client
    llm.script(answer({"summary": "Cooks bread, lasagna, dumplings and fresh pasta."}))
    old_memories(client, "alice")
    added = compress(client, "alice")
    assert added["summary"]["text"] == "Cooks bread, lasagna, dumplings and fresh pasta."
    assert added["payload"]["summariser"] == "llm"
    assert added["payload"]["prompt"] == "summarise.v1"
    [request] = llm.requests
    sent = request["messages"][1]["content"]
    assert all(text in sent for text in TEXTS) and "[2024-01-01]" in sent
    assert request["response_format"]["type"] == "json_schema"


def test_a_failing_model_leaves_the_extractive_summary(
        llm_client: tuple[TestClient, ScriptedLLM]) -> None:
    client, llm = llm_client
    llm.script(Step("text", "not json {"), Step("status", 500))
    old_memories(client, "bob")
    added = compress(client, "bob")
    assert added["payload"]["summariser"] == "extractive"
    assert added["payload"]["llm_failure"] == "http_500"
    assert all(text in added["summary"]["text"] for text in TEXTS)
