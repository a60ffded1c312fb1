"""Finding 2 of issue 19 (filter bombs), over HTTP: every condition (metadata keys' too)
counts against MAX_FILTER_NODES, and every condition and every ``in`` value against one budget
(MAX_FILTER_TERMS), so a filter that would cost seconds per call is refused with a 422
before any memory is read, and one within the budget still answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from gateway.api.mem0.bounded import MAX_QUERY_BODY_BYTES
from gateway.api.mem0.filters import MAX_FILTER_NODES, MAX_FILTER_TERMS

SEARCH = "/v2/memories/search/"
LIST = "/v2/memories/"


@pytest.fixture(scope="module")
def user(gateway_url: str) -> str:
    name = f"budget-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=gateway_url, timeout=60) as http:
        added = http.post("/v1/memories", json={"user_id": name, "text": "I like tea",
                                                  "metadata": {"k0": 1}})
        assert added.status_code == 201, added.text
    return name


def _post(url: str, path: str, body: dict) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=60) as http:
        return http.post(path, json=body)


@pytest.mark.parametrize("path", [SEARCH, LIST])
def test_many_metadata_keys_are_refused(gateway_url: str, user: str, path: str) -> None:
    metadata = {f"k{i}": {"ne": i} for i in range(MAX_FILTER_NODES + 1)}
    body = {"filters": {"user_id": user, "metadata": metadata}}
    answer = _post(gateway_url, path, body | ({"query": "tea"} if path == SEARCH else {}))
    assert answer.status_code == 422, answer.text
    assert f"more than {MAX_FILTER_NODES} conditions" in answer.json()["detail"]


def test_in_values_count_against_the_budget(gateway_url: str, user: str) -> None:
    values = list(range(MAX_FILTER_TERMS // 4))
    metadata = {f"k{i}": {"in": values} for i in range(5)}  # 5 conditions, few keys
    answer = _post(gateway_url, LIST, {"filters": {"user_id": user, "metadata": metadata}})
    assert answer.status_code == 422, answer.text
    assert "conditions and 'in' values" in answer.json()["detail"]


def test_the_finding_bomb_is_refused_undecoded(gateway_url: str, user: str) -> None:
    """The audit's bomb: 2,000 metadata keys of 100 ``in`` values each (1.4 MB): a 413 from
    its size, before any JSON is decoded on the event loop."""
    metadata = {f"key{i}": {"in": [f"v{j}" for j in range(100)]} for i in range(2_000)}
    answer = _post(gateway_url, SEARCH, {"query": "tea", "filters": {
        "user_id": user, "metadata": metadata}})
    assert answer.status_code == 413, answer.text
    assert f"at most {MAX_QUERY_BODY_BYTES} bytes" in answer.json()["detail"]


def test_a_chunked_query_body_past_the_cap_is_refused(gateway_url: str, user: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"filters": {"user_id": "%s", "text": "' % user.encode()
        for _ in range(MAX_QUERY_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}}'

    with httpx.Client(base_url=gateway_url, timeout=60) as http:
        answer = http.post(LIST, content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413, answer.text


def test_a_filter_within_the_budget_answers(gateway_url: str, user: str) -> None:
    metadata = {"k0": {"in": list(range(MAX_FILTER_TERMS // 2))}}
    answer = _post(gateway_url, LIST, {"filters": {"user_id": user, "metadata": metadata}})
    assert answer.status_code == 200, answer.text
    assert [m["memory"] for m in answer.json()["results"]] == ["I like tea"]
