"""Search queries embedded in the gateway (gateway.inference.local_encoder).

The encoder runs the exported version's own files with ONNX Runtime; it is trusted only after
its vectors agree with Triton's, and anything it cannot do falls back to Triton.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import settings_for
from support.triton_stats import quiet

from gateway.app import create_app
from gateway.deadline import Deadline, deadline_scope
from gateway.errors import DeadlineExceeded
from gateway.inference.local_encoder import (
    PROBE_TEXTS,
    QUERY_ENCODER_NICE,
    LocalEncoderUnavailable,
    LocalQueryEncoder,
    load_runtime,
)
from gateway.triton import TritonServer
from gateway.versions.control import repository_versions
from loadtest.repository import copy_latest_as_v1

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
VERSION = repository_versions(REPOSITORY, "embedder")[-1]
FACTS = ["I keep bees in Devon", "My sister lives in Lisbon", "I am allergic to peanuts",
         "The deploy failed because the disk was full"]
# A version whose files make other vectors than Triton's (same size, reversed components).
REVERSED = '''

_original_embed = EmbeddingRuntime.embed
EmbeddingRuntime.embed = lambda self, texts: np.ascontiguousarray(
    _original_embed(self, texts)[:, ::-1])
'''


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """The exported version's vectors for the probe texts, computed directly."""
    return load_runtime(REPOSITORY / "embedder" / VERSION, 1).embed(list(PROBE_TEXTS))


def _served(vectors: np.ndarray):  # what Triton would answer
    async def served(texts: list[str]) -> np.ndarray:
        assert texts == list(PROBE_TEXTS)
        return vectors
    return served


def test_a_version_serves_only_when_it_agrees_with_triton(reference: np.ndarray) -> None:
    async def scenario() -> None:
        encoder = LocalQueryEncoder(REPOSITORY, "embedder", threads=1)
        try:
            assert not await encoder.prepare("999", _served(reference))  # no such version
            assert not await encoder.prepare(VERSION, _served(reference[:, ::-1].copy()))
            assert not encoder.serves(VERSION)
            with pytest.raises(LocalEncoderUnavailable):
                await encoder.embed(["bees"], VERSION)

            assert await encoder.prepare(VERSION, _served(reference))
            assert encoder.serves(VERSION)
            together = await asyncio.gather(*(encoder.embed([t], VERSION) for t in PROBE_TEXTS))
            np.testing.assert_allclose(np.concatenate(together), reference, atol=1e-5)

            with deadline_scope(Deadline.after(-1.0)), pytest.raises(DeadlineExceeded):
                await encoder.embed(["too late"], VERSION)

            encoder.retain([])  # a switch to another version drops this one
            with pytest.raises(LocalEncoderUnavailable):
                await encoder.embed(["bees"], VERSION)
        finally:
            encoder.close()

    asyncio.run(scenario())


def test_queries_embed_on_a_thread_that_yields_to_writes() -> None:
    encoder = LocalQueryEncoder(REPOSITORY, "embedder", threads=1)
    try:
        nice = encoder._executor.submit(
            lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result(30)
    finally:
        encoder.close()
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert nice == min(19, mine + QUERY_ENCODER_NICE)


def _search_all(client: TestClient, queries: list[str]) -> list[list[tuple[str, float]]]:
    found = []
    for query in queries:
        response = client.post("/v1/memories/search", json={
            "user_id": "u", "query": query, "mode": "semantic", "limit": 4})
        assert response.status_code == 200, response.text
        found.append([(r["text"], r["similarity"]) for r in response.json()["results"]])
    return found


def test_searches_embed_in_the_gateway_and_rank_as_with_triton(triton: TritonServer,
                                                                tmp_path: Path) -> None:
    queries = ["honey", "where does my sister live", "food allergy", "why did the release break"]
    fp32 = settings_for(triton, tmp_path / "data", query_precision="fp32")
    with TestClient(create_app(fp32)) as client:
        assert client.get("/readyz").json()["query_encoder"] == "local"
        assert client.get("/readyz").json()["query_precision"] == "fp32"
        added = client.post("/v1/memories/batch", json={
            "items": [{"user_id": "u", "text": t} for t in FACTS]})
        assert added.status_code == 201
        before = {m: quiet(triton, m) for m in ("embedder", "embedder_query")}
        local = _search_all(client, queries)
        assert {m: quiet(triton, m) for m in before} == before  # Triton was not asked
        metrics = client.get("/metrics").text
        assert "memory_query_encoder_seconds_count 4.0" in metrics

    settings = settings_for(triton, tmp_path / "data", query_encoder="triton")
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["query_encoder"] == "embedder_query"
        served = _search_all(client, queries)
    assert [[t for t, _ in hits] for hits in local] == [[t for t, _ in hits] for hits in served]
    assert [t for t, _ in (hits[0] for hits in local)] == FACTS
    np.testing.assert_allclose([[s for _, s in hits] for hits in local],
                               [[s for _, s in hits] for hits in served], atol=1e-4)


def test_a_repository_that_disagrees_with_triton_keeps_queries_on_triton(
        triton: TritonServer, tmp_path: Path) -> None:
    """The gateway pointed at other files than its Triton serves: queries stay on Triton."""
    other = copy_latest_as_v1(tmp_path)
    runtime = other / "embedder" / "1" / "embedding_runtime.py"
    runtime.write_text(runtime.read_text() + REVERSED)
    settings = settings_for(triton, tmp_path / "data").model_copy(
        update={"model_repository": other})
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["query_encoder"] == "embedder"
        client.post("/v1/memories/batch", json={
            "items": [{"user_id": "u", "text": t} for t in FACTS]})
        before = quiet(triton, "embedder")
        found = _search_all(client, ["honey"])
        assert found[0][0][0] == "I keep bees in Devon"
        assert quiet(triton, "embedder").requests == before.requests + 1


QUERIES = ["honey", "where does my sister live", "food allergy", "why did the release break"]


def test_int8_queries_rank_the_fp32_memories_as_fp32_queries_do(triton: TritonServer,
                                                                  tmp_path: Path) -> None:
    """The default precision: queries run a per-channel int8 copy of the served version,
    against the fp32 vectors Triton stored; the same memories come first, cosines barely move.
    """
    with TestClient(create_app(settings_for(triton, tmp_path / "data"))) as client:
        ready = client.get("/readyz").json()
        assert (ready["query_encoder"], ready["query_precision"]) == ("local", "int8")
        client.post("/v1/memories/batch", json={
            "items": [{"user_id": "u", "text": t} for t in FACTS]})
        before = {m: quiet(triton, m) for m in ("embedder", "embedder_query")}
        int8 = _search_all(client, QUERIES)
        assert {m: quiet(triton, m) for m in before} == before  # Triton was not asked
    fp32 = settings_for(triton, tmp_path / "data", query_precision="fp32")
    with TestClient(create_app(fp32)) as client:
        exact = _search_all(client, QUERIES)
    assert [t for t, _ in (hits[0] for hits in int8)] == FACTS
    assert [t for t, _ in (hits[0] for hits in exact)] == FACTS
    int8_cos = np.array([[s for _, s in sorted(h)] for h in int8])
    fp32_cos = np.array([[s for _, s in sorted(h)] for h in exact])
    assert not np.allclose(int8_cos, fp32_cos, atol=1e-6)  # another graph answered
    np.testing.assert_allclose(int8_cos, fp32_cos, atol=0.05)
