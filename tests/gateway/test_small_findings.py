"""Issue 19, finding 10, each reproduced against a real gateway: dates that overflow when
turned to UTC are a 422 (were a 500), ``mem0:`` metadata keys are refused on /v1 (were stored),
an LLM provider's error body stays in the log (reached the tenant), and user names stay out of
the logs at INFO (the 500 handler, graph builds)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support import settings_for
from support.scripted_llm import ScriptedLLM, Step
from support.servers import serving

from gateway.app import create_app
from gateway.triton import TritonServer

EARLY = "0001-01-01T00:00:00+01:00"  # before datetime.min once in UTC
LATE = "9999-12-31T23:59:59-01:00"  # after datetime.max once in UTC


@pytest.fixture(scope="module")
def url(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = settings_for(triton, tmp_path_factory.mktemp("small-findings"))
    with serving(settings) as base:
        with httpx.Client(base_url=base) as http:
            assert http.post("/v1/memories", json={"user_id": "u", "text": "tea"}
                             ).status_code == 201
        yield base


@pytest.mark.parametrize("field", ["created_after", "created_before"])
@pytest.mark.parametrize("moment", [EARLY, LATE])
def test_v1_filter_dates_that_overflow_are_a_422(url: str, field: str, moment: str) -> None:
    answer = httpx.post(f"{url}/v1/memories/search", json={
        "user_id": "u", "query": "tea", "filters": {field: moment}})
    assert answer.status_code == 422, answer.text
    assert "detail" in answer.json()


@pytest.mark.parametrize("moment", [EARLY, LATE])
def test_mem0_filter_dates_that_overflow_are_a_422(url: str, moment: str) -> None:
    answer = httpx.post(f"{url}/v2/memories/search/", json={
        "query": "tea", "filters": {"user_id": "u", "created_at": {"gte": moment}}})
    assert answer.status_code == 422, answer.text
    assert "ISO-8601" in answer.json()["detail"]


def test_v1_refuses_mem0_metadata_keys(url: str) -> None:
    with httpx.Client(base_url=url) as http:
        added = http.post("/v1/memories", json={"user_id": "u", "text": "x",
                                                "metadata": {"mem0:app_id": "forged"}})
        assert added.status_code == 422, added.text
        assert "mem0:" in str(added.json()["detail"])
        memory_id = http.get("/v1/memories", params={"user_id": "u"}).json()["results"][0]["id"]
        patched = http.patch(f"/v1/memories/{memory_id}", json={
            "metadata": {"mem0:role": "system"}})
        assert patched.status_code == 422, patched.text
        listed = http.get("/v1/memories", params={"user_id": "u"}).json()["results"]
        assert [m["text"] for m in listed] == ["tea"]


def test_llm_error_bodies_stay_in_the_log(triton: TritonServer, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    llm = ScriptedLLM()
    server, llm_url = llm.serve()
    llm.script(Step("status", 429), Step("status", 400))
    settings = settings_for(triton, tmp_path / "data", llm_base_url=llm_url, llm_model="m",
                            llm_attempts=2, llm_backoff_s=0.01)
    caplog.set_level(logging.INFO)
    try:
        with TestClient(create_app(settings)) as client:
            answer = client.post("/v1/memories", json={"user_id": "u", "infer": True,
                                                       "messages": [{"role": "user",
                                                                     "content": "hi"}]})
    finally:
        server.shutdown()
    assert answer.status_code == 201, answer.text
    inference = answer.json()["inference"]
    assert inference["status"] == "FAILED"
    assert "scripted failure" not in answer.text
    assert "HTTP 400" in inference["detail"]
    assert "scripted failure" in caplog.text  # the operator still sees the provider's words


def test_unhandled_errors_log_no_user_names(url: str) -> None:
    """The 500 handler logs the route template, not the path with its names in it."""
    from gateway.api.errors import route_of

    scope = {"type": "http", "path": "/v2/entities/user/alice-smith/", "route": None}
    assert "alice-smith" not in route_of(scope)


def test_graph_build_logs_name_no_user(caplog: pytest.LogCaptureFixture) -> None:
    from gateway.redact import user_ref

    assert "alice" not in user_ref("acme\x1falice")
    assert user_ref("acme\x1falice") == user_ref("acme\x1falice")
    assert user_ref("acme\x1falice") != user_ref("acme\x1fbob")
