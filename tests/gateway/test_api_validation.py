"""Bad input gets a clear 4xx naming the field, and never changes stored data."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.api.schemas import MAX_BATCH_ITEMS, MAX_METADATA_BYTES, MAX_TEXT_CHARS

STORE_BACKENDS = ("sqlite", "postgres")  # each test on both stores (conftest.py)

GOOD = {"user_id": "alice", "text": "a valid memory"}


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    assert client.post("/v1/memories", json=GOOD).status_code == 201
    return client


def stored(client: TestClient) -> list[dict]:
    return client.get("/v1/memories", params={"user_id": "alice"}).json()["results"]


def dim(client: TestClient) -> int:
    return client.app.state.gateway.service.models.info.dim  # type: ignore[attr-defined]


BAD_ADDS = [
    ({"user_id": "alice", "text": ""}, ["body", "text"]),
    ({"user_id": "alice", "text": "   \n\t"}, ["body", "text"]),
    ({"user_id": "alice", "text": "x" * (MAX_TEXT_CHARS + 1)}, ["body", "text"]),
    ({"user_id": "alice", "text": "ok", "metadata": ["not", "an", "object"]}, ["body", "metadata"]),
    ({"user_id": "alice", "text": "ok", "metadata": "str"}, ["body", "metadata"]),
    ({"user_id": "alice", "text": "ok", "metadata": {"k": "v" * MAX_METADATA_BYTES}},
     ["body", "metadata"]),
    ({"user_id": "alice", "text": "ok", "metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {
        "h": {"i": 1}}}}}}}}}}, ["body", "metadata"]),
    ({"user_id": "alice", "text": "ok", "priority": 11}, ["body", "priority"]),
    ({"user_id": "alice", "text": "ok", "priority": -1}, ["body", "priority"]),
    ({"user_id": "alice", "text": "ok", "priority": "5"}, ["body", "priority"]),
    ({"user_id": "alice", "text": "ok", "priority": 5.5}, ["body", "priority"]),
    ({"user_id": "alice", "text": "ok", "embedding": [0.1, 0.2]}, ["body", "embedding"]),
    ({"user_id": "alice", "text": "ok", "embedding": []}, ["body", "embedding"]),
    ({"user_id": "alice", "text": "ok", "unknown_field": 1}, ["body", "unknown_field"]),
    ({"user_id": "", "text": "ok"}, ["body", "user_id"]),
    ({"user_id": "  ", "text": "ok"}, ["body", "user_id"]),
    ({"user_id": "u" * 129, "text": "ok"}, ["body", "user_id"]),
    ({"text": "missing user"}, ["body", "user_id"]),
    ({"user_id": 7, "text": "ok"}, ["body", "user_id"]),
]


@pytest.mark.parametrize(("body", "loc"), BAD_ADDS)
def test_bad_add_is_422_naming_the_field(seeded: TestClient, body: dict, loc: list) -> None:
    before = stored(seeded)
    response = seeded.post("/v1/memories", json=body)
    assert response.status_code == 422, response.text
    assert loc in [error["loc"][: len(loc)] for error in response.json()["detail"]]
    assert stored(seeded) == before


def raw_post(client: TestClient, path: str, payload: str) -> object:
    return client.post(path, content=payload.encode("utf-8", "surrogatepass"),
                       headers={"content-type": "application/json"})


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_embedding_values_are_rejected(seeded: TestClient, literal: str) -> None:
    values = ", ".join(["0.1"] * (dim(seeded) - 1) + [literal])
    response = raw_post(seeded, "/v1/memories",
                        f'{{"user_id": "alice", "text": "ok", "embedding": [{values}]}}')
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "embedding"]


def test_zero_embedding_is_rejected(seeded: TestClient) -> None:
    response = seeded.post("/v1/memories", json={**GOOD, "embedding": [0.0] * dim(seeded)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "embedding"]


def test_nan_in_metadata_is_rejected(seeded: TestClient) -> None:
    response = raw_post(seeded, "/v1/memories",
                        '{"user_id": "alice", "text": "ok", "metadata": {"x": NaN}}')
    assert response.status_code == 422


def test_lone_surrogate_is_rejected(seeded: TestClient) -> None:
    response = raw_post(seeded, "/v1/memories", '{"user_id": "alice", "text": "bad \\ud800"}')
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "text"]
    response = raw_post(seeded, "/v1/memories", '{"user_id": "\\udfff", "text": "ok"}')
    assert response.status_code == 422


@pytest.mark.parametrize("payload", ['{"user_id": "alice", "text": ', "not json", "[1, 2"])
def test_malformed_json_is_400(seeded: TestClient, payload: str) -> None:
    response = raw_post(seeded, "/v1/memories", payload)
    assert response.status_code == 400
    assert "detail" in response.json()


def test_deeply_nested_json_is_a_clean_4xx(seeded: TestClient) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    payload = '{"user_id": "alice", "text": "ok", "metadata": {"a": ' + nested + "}}"
    response = raw_post(seeded, "/v1/memories", payload)
    assert 400 <= response.status_code < 500
    assert len(stored(seeded)) == 1


def test_oversize_body_is_413(client: TestClient) -> None:
    limit = client.app.state.gateway.settings.max_body_bytes  # type: ignore[attr-defined]
    response = raw_post(client, "/v1/memories", '{"user_id": "a", "text": "' + "x" * limit + '"}')
    assert response.status_code == 413
    assert "detail" in response.json()


def test_chunked_oversize_body_is_413(client: TestClient) -> None:
    limit = client.app.state.gateway.settings.max_body_bytes  # type: ignore[attr-defined]

    def chunks():  # no Content-Length: the limit applies while streaming
        yield b'{"user_id": "a", "text": "'
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    response = client.post("/v1/memories", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_bad_batch_item_names_its_index_and_stores_nothing(seeded: TestClient) -> None:
    items = [{"user_id": "alice", "text": f"fine {i}"} for i in range(5)]
    items[3] = {"user_id": "alice", "text": " "}
    response = seeded.post("/v1/memories/batch", json={"items": items})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:4] == ["body", "items", 3, "text"]
    assert len(stored(seeded)) == 1


def test_bad_batch_embedding_names_its_index_and_stores_nothing(seeded: TestClient) -> None:
    items = [{"user_id": "alice", "text": f"fine {i}"} for i in range(3)]
    items[2]["embedding"] = [1.0, 2.0]  # type: ignore[assignment]
    response = seeded.post("/v1/memories/batch", json={"items": items})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "items", 2, "embedding"]
    assert len(stored(seeded)) == 1


@pytest.mark.parametrize("items", [[], [GOOD] * (MAX_BATCH_ITEMS + 1)])
def test_batch_size_limits(seeded: TestClient, items: list) -> None:
    response = seeded.post("/v1/memories/batch", json={"items": items})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "items"]


BAD_SEARCHES = [
    ({"user_id": "alice"}, ["body"]),
    ({"user_id": "alice", "query": "q", "embedding": [0.1]}, ["body"]),
    ({"user_id": "alice", "query": "q", "limit": 0}, ["body", "limit"]),
    ({"user_id": "alice", "query": "q", "limit": 101}, ["body", "limit"]),
    ({"user_id": "alice", "query": "q", "threshold": 1.5}, ["body", "threshold"]),
    ({"user_id": "alice", "query": "q", "filters": {"colour": "red"}}, ["body", "filters"]),
    ({"user_id": "alice", "query": "q", "filters": {"metadata": {"k": [1]}}}, ["body", "filters"]),
    ({"user_id": "alice", "query": "q", "filters": {"created_after": "yesterday"}},
     ["body", "filters", "created_after"]),
    ({"user_id": "alice", "query": ""}, ["body", "query"]),
    ({"user_id": "alice", "embedding": [0.1, 0.2, 0.3]}, ["body", "embedding"]),
]


@pytest.mark.parametrize(("body", "loc"), BAD_SEARCHES)
def test_bad_search_is_422(seeded: TestClient, body: dict, loc: list) -> None:
    response = seeded.post("/v1/memories/search", json=body)
    assert response.status_code == 422, response.text
    assert loc in [error["loc"][: len(loc)] for error in response.json()["detail"]]


def test_bad_paging_parameters(seeded: TestClient) -> None:
    for params in ({"user_id": "alice", "cursor": "garbage!"},
                   {"user_id": "alice", "cursor": "bm90LWEtdXVpZA"},
                   {"user_id": "alice", "limit": 0},
                   {"user_id": "alice", "limit": 100_000},
                   {}):
        response = seeded.get("/v1/memories", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["detail"]


def test_bad_ids_and_patches(seeded: TestClient) -> None:
    [memory] = stored(seeded)
    assert seeded.get("/v1/memories/not-a-uuid").status_code == 422
    assert seeded.get("/v1/memories/0191d3a0-0000-7000-8000-000000000000").status_code == 404
    for patch in ({}, {"text": ""}, {"priority": 99}, {"user_id": "mallory"}, {"metadata": [1]}):
        response = seeded.patch(f"/v1/memories/{memory['id']}", json=patch)
        assert response.status_code == 422, (patch, response.text)
    assert stored(seeded) == [memory]
    assert seeded.delete("/v1/memories").status_code == 422  # user_id is required
    assert stored(seeded) == [memory]
