"""Search with ``rerank`` through the gateway, against a real Triton serving both models.

The server here serves a copy of the exported embedder plus the tiny cross-encoder exported by
the real CLI. Memories carry client-supplied embeddings built around the query's own embedding,
so their cosine order is exact and known; the reranker must overturn it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from fastapi.testclient import TestClient
from support import make_triton, settings_for, wait_for
from support.tiny_cross_encoder import TOPICS, passage, query
from support.triton_stats import quiet, settled

from gateway.app import create_app
from gateway.triton import TritonServer
from loadtest.repository import copy_latest_as_v1

QUERY = query("chess")  # "what does the user think about chess?"
ON_TOPIC = passage("chess")  # what the reranker must put first
# Off-topic memories the vector stage prefers: (text, cosine with the query).
DISTRACTORS = [(passage(t), c) for t, c in zip(("pizza", "yoga", "wine", "opera", "tennis"),
                                               (0.9, 0.85, 0.8, 0.75, 0.7), strict=True)]
ON_TOPIC_COSINE = 0.3


@pytest.fixture(scope="module")
def both_models(
    reranker_repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    root = tmp_path_factory.mktemp("rerank-repo")
    repo = copy_latest_as_v1(root, "embedder")
    copy_latest_as_v1(root, "reranker", source=reranker_repo)
    server = make_triton(root, repository=repo, models=("embedder", "reranker"))
    with server:
        yield server


@pytest.fixture
def rerank_client(both_models: TritonServer, tmp_path: Path) -> Iterator[TestClient]:
    # Memories are planted at exact cosines to Triton's query vector: queries must be
    # embedded by the same fp32 graph (the int8 query graph moves cosines by ~0.01).
    settings = settings_for(both_models, tmp_path / "data", query_precision="fp32")
    with TestClient(create_app(settings)) as client:
        yield client


def embed(server: TritonServer, text: str) -> np.ndarray:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        tensor = grpcclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[text.encode()]], dtype=object))
        return client.infer("embedder", [tensor]).as_numpy("EMBEDDING")[0].astype(np.float64)
    finally:
        client.close()


def at_cosine(q: np.ndarray, cosine: float, seed: int) -> list[float]:
    """A unit vector whose cosine with the unit vector ``q`` is exactly ``cosine``."""
    other = np.random.default_rng(seed).normal(size=q.shape)
    other -= (other @ q) * q
    other /= np.linalg.norm(other)
    return (cosine * q + np.sqrt(1 - cosine**2) * other).tolist()


def plant(client: TestClient, server: TritonServer, user: str = "alice") -> dict[str, str]:
    """Add the distractors and the on-topic memory; returns {text: id}."""
    q = embed(server, QUERY)
    items = [{"user_id": user, "text": text, "embedding": at_cosine(q, cosine, i)}
             for i, (text, cosine) in enumerate([*DISTRACTORS, (ON_TOPIC, ON_TOPIC_COSINE)])]
    response = client.post("/v1/memories/batch", json={"items": items})
    assert response.status_code == 201, response.text
    return {m["text"]: m["id"] for m in response.json()["results"]}


def search(client: TestClient, status: int = 200, **body: object) -> list[dict]:
    # Semantic mode: these tests compare the reranker with the cosine order.
    response = client.post("/v1/memories/search",
                           json={"user_id": "alice", "mode": "semantic", **body})
    assert response.status_code == status, response.text
    return response.json()["results"] if status == 200 else response.json()["detail"]


def test_rerank_overturns_the_vector_order(
    rerank_client: TestClient, both_models: TritonServer
) -> None:
    ids = plant(rerank_client, both_models)
    plain = search(rerank_client, query=QUERY, limit=6, rerank=False)
    assert [r["text"] for r in plain] == [t for t, _ in DISTRACTORS] + [ON_TOPIC]
    assert all(r["score"] == r["similarity"] for r in plain)
    np.testing.assert_allclose([r["similarity"] for r in plain],
                               [c for _, c in DISTRACTORS] + [ON_TOPIC_COSINE], atol=1e-5)

    [best] = search(rerank_client, query=QUERY, limit=1, rerank=True)
    assert best["id"] == ids[ON_TOPIC]
    assert best["similarity"] == pytest.approx(ON_TOPIC_COSINE, abs=1e-5)  # the cosine stays
    assert best["score"] != best["similarity"]  # the score is the reranker's logit

    ranked = search(rerank_client, query=QUERY, limit=6, rerank=True)
    assert ranked[0]["id"] == ids[ON_TOPIC] and len(ranked) == 6
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True) and scores[0] == best["score"]
    cosines = dict(DISTRACTORS) | {ON_TOPIC: ON_TOPIC_COSINE}
    for result in ranked:
        assert result["similarity"] == pytest.approx(cosines[result["text"]], abs=1e-5)


def test_one_triton_request_scores_the_whole_pool(
    rerank_client: TestClient, both_models: TritonServer
) -> None:
    texts = [passage(t, i) for t in TOPICS for i in range(3)]  # 60 memories
    response = rerank_client.post("/v1/memories/batch", json={
        "items": [{"user_id": "alice", "text": t} for t in texts]})
    assert response.status_code == 201
    for limit, pool in ((5, 50), (20, 60)):  # max(limit * 4, 50), capped by what exists
        before = quiet(both_models, "reranker")
        results = search(rerank_client, query=QUERY, limit=limit, rerank=True)
        delta = settled(both_models, "reranker", before, 1)
        assert (delta.requests, delta.executions, delta.inferences) == (1, 1, pool)
        assert len(results) == limit and "chess" in results[0]["text"]


def test_threshold_bounds_the_cosine_before_reranking(
    rerank_client: TestClient, both_models: TritonServer
) -> None:
    plant(rerank_client, both_models)
    results = search(rerank_client, query=QUERY, limit=6, rerank=True, threshold=0.5)
    assert {r["text"] for r in results} == {t for t, _ in DISTRACTORS}
    assert all(r["similarity"] >= 0.5 for r in results)


def test_default_from_settings(both_models: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(both_models, tmp_path / "data", rerank_default=True)
    with TestClient(create_app(settings)) as client:
        ids = plant(client, both_models)
        assert search(client, query=QUERY, limit=1)[0]["id"] == ids[ON_TOPIC]
        assert search(client, query=QUERY, limit=1, rerank=False)[0]["text"] == DISTRACTORS[0][0]
        # An embedding query cannot be reranked: the default quietly does not apply.
        vector = embed(both_models, QUERY).tolist()
        assert search(client, embedding=vector, limit=1)[0]["text"] == DISTRACTORS[0][0]


def test_rerank_needs_a_text_query(rerank_client: TestClient, both_models: TritonServer) -> None:
    vector = embed(both_models, QUERY).tolist()
    [error] = search(rerank_client, 422, embedding=vector, rerank=True)
    assert error["loc"] == ["body", "rerank"] and "query" in error["msg"]
    [error] = search(rerank_client, 422, query=QUERY, rerank="yes")
    assert error["loc"] == ["body", "rerank"]


def test_no_reranker_loaded_is_a_409(client: TestClient) -> None:
    """The session server serves the embedder only."""
    client.post("/v1/memories", json={"user_id": "alice", "text": ON_TOPIC})
    detail = search(client, 409, query=QUERY, rerank=True)
    assert "no reranker model is loaded" in detail
    [result] = search(client, query=QUERY)  # rerank defaults to off
    assert result["score"] == result["similarity"]


def test_default_on_without_a_reranker_searches_by_vector(triton: TritonServer,
                                                          tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(triton, tmp_path / "d", rerank_default=True))) as c:
        c.post("/v1/memories", json={"user_id": "alice", "text": ON_TOPIC})
        [result] = search(c, query=QUERY)
        assert result["score"] == result["similarity"]
        assert "no reranker" in search(c, 409, query=QUERY, rerank=True)


def test_reranker_unloaded_while_running(
    rerank_client: TestClient, both_models: TritonServer, tmp_path: Path
) -> None:
    """An explicit ask becomes a 409, a default falls back to vector order; runs last in the
    module because it unloads the reranker (and loads it back)."""
    settings = settings_for(both_models, tmp_path / "d", rerank_default=True)
    control = grpcclient.InferenceServerClient(both_models.grpc_url)
    try:
        with TestClient(create_app(settings)) as by_default:
            for client in (rerank_client, by_default):
                plant(client, both_models)
            assert search(rerank_client, query=QUERY, limit=1, rerank=True)[0]["text"] == ON_TOPIC
            assert search(by_default, query=QUERY, limit=1)[0]["text"] == ON_TOPIC
            control.unload_model("reranker")
            wait_for(lambda: not control.is_model_ready("reranker"),  # in the background
                     "the reranker to unload", poll_s=0.1)
            assert search(by_default, query=QUERY, limit=1)[0]["text"] == DISTRACTORS[0][0]
            detail = search(rerank_client, 409, query=QUERY, rerank=True)
            assert "no reranker model is loaded" in detail
            assert search(rerank_client, query=QUERY, limit=1)[0]["text"] == DISTRACTORS[0][0]
        control.load_model("reranker")
        assert search(rerank_client, query=QUERY, limit=1, rerank=True)[0]["text"] == ON_TOPIC
    finally:
        if not control.is_model_ready("reranker"):
            control.load_model("reranker")
        control.close()


def test_hybrid_rerank_scores_the_fused_pool(
    rerank_client: TestClient, both_models: TritonServer
) -> None:
    """The reranker reads the fused pool: a memory only the keyword retriever finds (its
    vector is the farthest of 58) is reranked first in hybrid mode, and cannot be in
    semantic mode, where the pool is the vector search's alone."""
    q = embed(both_models, QUERY)
    others = [passage(t, i) for t in TOPICS if t != "chess" for i in range(3)]  # 57
    items = [{"user_id": "alice", "text": text, "embedding": at_cosine(q, 0.9 - 0.005 * i, i)}
             for i, text in enumerate(others)]
    items.append({"user_id": "alice", "text": ON_TOPIC, "embedding": at_cosine(q, 0.1, 99)})
    response = rerank_client.post("/v1/memories/batch", json={"items": items})
    assert response.status_code == 201, response.text

    semantic = search(rerank_client, query=QUERY, limit=5, rerank=True)
    assert ON_TOPIC not in [r["text"] for r in semantic]  # outside the 50 nearest

    before = quiet(both_models, "reranker")
    answer = rerank_client.post("/v1/memories/search", json={
        "user_id": "alice", "query": QUERY, "limit": 5, "mode": "hybrid", "rerank": True})
    delta = settled(both_models, "reranker", before, 1)
    assert answer.status_code == 200, answer.text
    assert answer.json()["mode"] == "hybrid"
    results = answer.json()["results"]
    assert (delta.requests, delta.inferences) == (1, 50)  # the pool: max(5 * 4, 50)
    best = results[0]
    assert best["text"] == ON_TOPIC
    assert best["keyword_score"] is not None and best["keyword_score"] > 0
    assert best["similarity"] == pytest.approx(0.1, abs=1e-5)  # its cosine, computed after
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True) and best["score"] != best["similarity"]
