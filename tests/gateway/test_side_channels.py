"""Side channels between tenants (issue 19, finding 7): one tenant's search must not warm the
query-embedding cache for another, so neither timings nor the cache's counters tell a tenant
whether anyone else searched a text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.inference.query_cache import QueryCache
from gateway.triton import TritonServer

SECRET_QUERY = "who is the acquisition target in March?"


@pytest.fixture
def two_tenants(triton: TritonServer, tmp_path: Path) -> Iterator[tuple[TestClient, dict]]:
    settings = settings_for(triton, tmp_path / "data", auth="required", query_cache_size=64)
    with KeyStore(settings.keys_path) as store:
        keys = {t: {"Authorization": f"Bearer {store.create(t, KeyScope.WRITE)[0].secret_key}"}
                for t in ("a", "b")}
    with TestClient(create_app(settings)) as client:
        yield client, keys


def test_one_tenants_search_is_no_cache_hit_for_another(
        two_tenants: tuple[TestClient, dict]) -> None:
    client, keys = two_tenants
    cache: QueryCache = client.app.state.gateway.service.query_cache  # type: ignore[attr-defined]
    body = {"user_id": "alice", "query": SECRET_QUERY, "mode": "semantic"}
    assert client.post("/v1/memories/search", json=body, headers=keys["a"]).status_code == 200
    assert (cache.stats.hits, cache.stats.misses) == (0, 1)
    # b searches the same text (for a user of the same name): embedded again, not a hit
    assert client.post("/v1/memories/search", json=body, headers=keys["b"]).status_code == 200
    assert (cache.stats.hits, cache.stats.misses) == (0, 2)
    assert cache.tenant_stats("b").misses == 1 and cache.tenant_stats("b").hits == 0
    # a's own repeat still hits: the cache keeps working within a tenant
    assert client.post("/v1/memories/search", json=body, headers=keys["a"]).status_code == 200
    assert cache.tenant_stats("a").hits == 1 and cache.stats.hits == 1


def test_cache_entries_are_per_tenant_and_share_one_capacity() -> None:
    import numpy as np

    cache = QueryCache(2)
    v = np.ones(4, dtype=np.float32)
    cache.put("a", "embedder:1", "q", v)
    assert cache.get("b", "embedder:1", "q") is None
    assert cache.get("a", "embedder:1", "q") is not None
    cache.put("b", "embedder:1", "q", v)
    cache.put("b", "embedder:1", "r", v)  # capacity 2 over all tenants: a's entry goes
    assert len(cache) == 2 and cache.get("a", "embedder:1", "q") is None
    assert cache.tenant_stats("a").hits == 1 and cache.tenant_stats("a").misses == 1
    assert cache.tenant_stats("nobody").hits == 0


def test_the_tenant_rule_below_the_api_is_the_scopes() -> None:
    from gateway.auth.scope import SEPARATOR, TenantScope
    from gateway.domain.tenancy import TENANT_SEPARATOR, tenant_of

    assert TENANT_SEPARATOR == SEPARATOR
    assert tenant_of(TenantScope("acme").internal("alice")) == "acme"
    assert tenant_of(TenantScope().internal("alice")) == ""
