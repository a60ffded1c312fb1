"""The search query path: the batcher-free query twin, and the query embedding cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from support import make_triton, settings_for
from support.triton_stats import quiet, settled

from gateway.app import create_app
from gateway.inference.query_cache import QueryCache
from gateway.triton import TritonServer
from gateway.versions.query_model import query_config
from loadtest.repository import copy_latest_as_v1


def test_cache_is_lru_and_keyed_by_model_version() -> None:
    cache = QueryCache(2)
    a, b, c = (np.full(4, v, dtype=np.float32) for v in (1, 2, 3))
    cache.put("t", "embedder:1", "a", a)
    cache.put("t", "embedder:1", "b", b)
    assert cache.get("t", "embedder:2", "a") is None  # another space: never the old vector
    assert np.array_equal(cache.get("t", "embedder:1", "a"), a)  # "a" is now the most recent
    cache.put("t", "embedder:1", "c", c)  # evicts "b", the least recently used
    assert cache.get("t", "embedder:1", "b") is None
    assert len(cache) == 2 and (cache.stats.hits, cache.stats.misses) == (1, 2)
    hit = cache.get("t", "embedder:1", "c")
    assert hit is not None and not hit.flags.writeable  # shared by every hit: read-only
    off = QueryCache(0)
    off.put("t", "embedder:1", "a", a)
    assert off.get("t", "embedder:1", "a") is None and len(off) == 0


def test_query_config_drops_the_batcher_and_keeps_the_rest() -> None:
    bulk = (Path(__file__).resolve().parents[2] / "model_repository" / "embedder"
            / "config.pbtxt").read_text()
    twin = query_config(bulk, "embedder")
    assert twin is not None
    assert 'name: "embedder_query"' in twin and "dynamic_batching" not in twin
    assert "max_batch_size: 1024" in twin and 'name: "TEXT"' in twin
    assert query_config('name: "e"\nplatform: "ensemble"\n', "e") is None  # GPU layout


def test_searches_use_the_twin_and_repeated_queries_skip_triton(triton: TritonServer,
                                                                 tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", query_cache_size=16,
                            query_encoder="triton")
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["query_model"] == "embedder_query"
        client.post("/v1/memories", json={"user_id": "u", "text": "I keep bees in Devon"})
        before = quiet(triton, "embedder_query")
        first = client.post("/v1/memories/search", json={"user_id": "u", "query": "honey"})
        assert settled(triton, "embedder_query", before, 1).requests == 1
        again = quiet(triton, "embedder_query")
        for _ in range(3):
            repeat = client.post("/v1/memories/search", json={"user_id": "u", "query": "honey"})
            assert repeat.json()["results"] == first.json()["results"]
        assert quiet(triton, "embedder_query") == again  # answered from the cache
        metrics = client.get("/metrics").text
        assert 'memory_query_cache{outcome="hits"} 3.0' in metrics
        assert 'memory_query_cache{outcome="misses"} 1.0' in metrics


def test_without_a_twin_searches_use_the_batching_model(tmp_path: Path) -> None:
    """A repository the launcher cannot make the twin in (here a real folder where a version
    link belongs) still serves: Triton starts without it and searches use ``embedder``."""
    repository = copy_latest_as_v1(tmp_path)
    (repository / "embedder_query" / "1").mkdir(parents=True)
    server = make_triton(tmp_path, repository=repository)
    with server:
        assert server.loaded_models == ["embedder"]
        settings = settings_for(server, tmp_path / "data", query_encoder="triton")
        with TestClient(create_app(settings)) as client:
            assert client.get("/readyz").json()["query_model"] is None
            client.post("/v1/memories", json={"user_id": "u", "text": "I keep bees in Devon"})
            found = client.post("/v1/memories/search", json={"user_id": "u", "query": "bees"})
            assert found.status_code == 200
            assert found.json()["results"][0]["text"] == "I keep bees in Devon"
