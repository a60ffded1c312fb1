"""Triton's dynamic batcher really merges concurrent embed requests from the gateway."""

from __future__ import annotations

import asyncio

import numpy as np
from support.triton_stats import quiet, settled

from gateway.inference.client import EmbedderClient
from gateway.metrics import Metrics
from gateway.triton import TritonServer
from gateway.versions.control import repository_versions


def test_concurrent_requests_are_batched(triton: TritonServer) -> None:
    async def scenario() -> np.ndarray:
        client = EmbedderClient(triton.grpc_url, "embedder", timeout_s=30, retry_after_s=1,
                                metrics=Metrics())
        try:
            version = repository_versions(triton.model_repository, "embedder")[-1]
            texts = [f"concurrent request number {i}" for i in range(128)]
            vectors = await asyncio.gather(*(client.embed([t], version) for t in texts))
            return np.concatenate(vectors)
        finally:
            await client.close()

    before = quiet(triton, "embedder")  # earlier tests' requests fully counted
    vectors = asyncio.run(scenario())
    delta = settled(triton, "embedder", before, 128)
    inferences, executions = delta.inferences, delta.executions
    assert inferences >= 128
    assert inferences / executions > 1.5, (inferences, executions)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert len({v.tobytes() for v in vectors}) == 128  # distinct texts, distinct vectors


def test_batched_results_equal_single_results(triton: TritonServer) -> None:
    """Padding inside a merged batch must not change any text's embedding."""

    async def scenario() -> tuple[np.ndarray, np.ndarray]:
        client = EmbedderClient(triton.grpc_url, "embedder", timeout_s=30, retry_after_s=1,
                                metrics=Metrics())
        try:
            texts = ["short", "a much longer sentence " * 12, "medium length sentence here"]
            version = repository_versions(triton.model_repository, "embedder")[-1]
            together = await client.embed(texts, version)
            alone = np.concatenate([await client.embed([t], version) for t in texts])
            return together, alone
        finally:
            await client.close()

    together, alone = asyncio.run(scenario())
    np.testing.assert_allclose(together, alone, atol=1e-5)
