"""The gateway-side coalescer: concurrent small embeds share requests to the batcher-free twin,
a lone call goes straight out, and one batch's failure reaches its callers only."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import settings_for
from support.triton_stats import quiet, settled

from gateway.app import create_app
from gateway.deadline import Deadline, deadline_scope
from gateway.errors import DeadlineExceeded, InferenceUnavailable
from gateway.inference.client import EmbedderClient
from gateway.inference.coalescer import EmbedCoalescer
from gateway.metrics import Metrics
from gateway.triton import TritonServer
from gateway.versions.control import repository_versions

TWIN = "embedder_query"


def _client(triton: TritonServer) -> EmbedderClient:
    return EmbedderClient(triton.grpc_url, "embedder", timeout_s=30, retry_after_s=1,
                          metrics=Metrics())


def _coalescer(client: EmbedderClient, max_texts: int = 64) -> EmbedCoalescer:
    async def embed(texts: list[str], version: str, model: str) -> np.ndarray:
        return await client.embed(texts, version, model=model)

    return EmbedCoalescer(embed, max_texts=max_texts)


def test_concurrent_calls_share_requests_and_get_their_own_rows(triton: TritonServer) -> None:
    texts = [f"what did I say about topic {i}" for i in range(24)]
    version = repository_versions(triton.model_repository, "embedder")[-1]

    async def scenario() -> tuple[list[np.ndarray], np.ndarray, EmbedCoalescer]:
        client = _client(triton)
        try:
            coalescer = _coalescer(client, max_texts=10)
            together = await asyncio.gather(
                *(coalescer.embed([t], version, TWIN) for t in texts[:20]),
                coalescer.embed(texts[20:], version, TWIN))  # one call of four texts
            alone = np.concatenate([await client.embed([t], version, model=TWIN)
                                    for t in texts])
            return list(together), alone, coalescer
        finally:
            await client.close()

    before = quiet(triton, TWIN)
    together, alone, coalescer = asyncio.run(scenario())
    assert [len(v) for v in together] == [1] * 20 + [4]
    np.testing.assert_allclose(np.concatenate(together), alone, atol=1e-5)
    stats = coalescer.stats
    assert stats.calls == 21
    # The first call goes out alone; the other 20 wait for it and go out in <= 10-text requests.
    assert 3 <= stats.requests <= 5, stats
    assert settled(triton, TWIN, before, stats.requests + len(texts)).requests == \
        stats.requests + len(texts)


def test_a_lone_call_goes_out_at_once_and_failures_reach_only_their_batch(
        triton: TritonServer) -> None:
    version = repository_versions(triton.model_repository, "embedder")[-1]

    async def scenario() -> None:
        client = _client(triton)
        try:
            coalescer = _coalescer(client)
            [one] = await coalescer.embed(["a lone query"], version, TWIN)
            assert coalescer.stats.requests == 1 and one.shape == (384,)
            bad = await asyncio.gather(*(coalescer.embed([f"q{i}"], "999", TWIN)
                                         for i in range(4)), return_exceptions=True)
            assert all(isinstance(e, InferenceUnavailable) for e in bad), bad
            good = await asyncio.gather(*(coalescer.embed([f"q{i}"], version, TWIN)
                                          for i in range(4)))
            assert all(v.shape == (1, 384) for v in good)
            with deadline_scope(Deadline.after(-0.01)):  # nobody waits: never sent
                sent = coalescer.stats.requests
                with pytest.raises(DeadlineExceeded):
                    await coalescer.embed(["too late"], version, TWIN)
                assert coalescer.stats.requests == sent
        finally:
            await client.close()

    asyncio.run(scenario())


def test_single_adds_and_searches_embed_with_the_twin(triton: TritonServer,
                                                       tmp_path: Path) -> None:
    """Small writes no longer meet the batching model's stall; big batches still use it."""
    with TestClient(create_app(settings_for(triton, tmp_path / "data"))) as client:
        bulk, twin = quiet(triton, "embedder"), quiet(triton, TWIN)
        start = threading.Barrier(8)

        def add(i: int) -> int:
            start.wait()
            return client.post("/v1/memories", json={
                "user_id": "u", "text": f"fact number {i} about the garden"}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(add, range(8))) == [201] * 8
        coalesced = client.app.state.gateway.service.vectors.coalescer.stats  # type: ignore[attr-defined]
        assert coalesced.calls >= 8 and coalesced.requests <= 8
        assert settled(triton, TWIN, twin, coalesced.requests).requests >= coalesced.requests
        assert quiet(triton, "embedder") == bulk
        batch = client.post("/v1/memories/batch", json={"items": [
            {"user_id": "u", "text": f"batch fact {i}"} for i in range(20)]})
        assert batch.status_code == 201
        assert settled(triton, "embedder", bulk, 1).requests == 1
        found = client.post("/v1/memories/search", json={
            "user_id": "u", "query": "fact number 3 about the garden", "mode": "semantic"})
        assert found.json()["results"][0]["text"] == "fact number 3 about the garden"
