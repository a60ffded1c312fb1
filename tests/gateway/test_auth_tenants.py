"""Tenant isolation on the /v1 API: another tenant's memory is a 404 (same text as a missing
id), another tenant's user is empty, same user names in two tenants never mix; and a property
test over random operations by two tenants: no read ever returns the other tenant's memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.settings import Settings
from gateway.startup import key_table

DIM = 384
MISSING_ID = "01900000-0000-7000-8000-000000000000"
STORE_BACKENDS = ("sqlite", "postgres")  # each test on both stores (conftest.py)


def vector(seed: int) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(DIM)
    return (v / np.linalg.norm(v)).tolist()


class Tenants:
    """One gateway with auth on and a write key per tenant."""

    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client, self.keys = client, keys

    def call(self, tenant: str, method: str, path: str, **kwargs: object):
        headers = {"Authorization": f"Bearer {self.keys[tenant]}"}
        return self.client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def tenants(settings: Settings) -> Iterator[Tenants]:
    settings = settings.model_copy(update={"auth": "required"})
    with KeyStore(settings.keys_path, key_table(settings)) as store:
        keys = {t: store.create(t, KeyScope.WRITE)[0].secret_key
                for t in ("a", "b", "default")}
    with TestClient(create_app(settings)) as client:
        yield Tenants(client, keys)


def add(t: Tenants, tenant: str, user: str, text: str, seed: int = 0) -> dict:
    response = t.call(tenant, "POST", "/v1/memories",
                      json={"user_id": user, "text": text, "embedding": vector(seed)})
    assert response.status_code == 201, response.text
    # the memory as stored (the add also says what it did: event, item, match)
    return {k: v for k, v in response.json().items() if k not in ("event", "item", "match")}


def test_every_route_keeps_tenant_b_out_of_tenant_a(tenants: Tenants) -> None:
    mine = add(tenants, "a", "alice", "a's secret")
    memory_id = mine["id"]
    missing = tenants.call("b", "GET", f"/v1/memories/{MISSING_ID}")
    assert missing.status_code == 404
    by_id = [
        ("GET", f"/v1/memories/{memory_id}", {}),
        ("PATCH", f"/v1/memories/{memory_id}", {"json": {"text": "b was here"}}),
        ("DELETE", f"/v1/memories/{memory_id}", {}),
        ("GET", f"/v1/memories/{memory_id}/history", {}),
    ]
    for method, path, kwargs in by_id:
        response = tenants.call("b", method, path, **kwargs)
        assert response.status_code == 404, (method, path)
        assert response.json()["detail"] == f"memory {memory_id} not found"
    search = tenants.call("b", "POST", "/v1/memories/search",
                          json={"user_id": "alice", "embedding": vector(0)})
    assert search.json()["results"] == []
    listed = tenants.call("b", "GET", "/v1/memories", params={"user_id": "alice"})
    assert listed.json()["results"] == []
    wiped = tenants.call("b", "DELETE", "/v1/memories", params={"user_id": "alice"})
    assert wiped.json() == {"deleted": 0}
    # the default tenant (the pre-auth namespace) is a tenant like the others
    assert tenants.call("default", "GET", f"/v1/memories/{memory_id}").status_code == 404
    assert tenants.call("default", "GET", "/v1/memories",
                        params={"user_id": "alice"}).json()["results"] == []
    # nothing of a's changed
    again = tenants.call("a", "GET", f"/v1/memories/{memory_id}").json()
    assert again == mine
    # after a deletes it, its history stays a's alone
    assert tenants.call("a", "DELETE", f"/v1/memories/{memory_id}").status_code == 204
    assert tenants.call("b", "GET", f"/v1/memories/{memory_id}/history").status_code == 404
    events = tenants.call("a", "GET", f"/v1/memories/{memory_id}/history").json()["results"]
    assert [e["event"] for e in events] == ["ADD", "DELETE"]


def test_two_tenants_may_each_have_an_alice(tenants: Tenants) -> None:
    a = add(tenants, "a", "alice", "alice of a", seed=1)
    b = add(tenants, "b", "alice", "alice of b", seed=1)
    d = add(tenants, "default", "alice", "alice of default", seed=1)
    for tenant, own in (("a", a), ("b", b), ("default", d)):
        assert own["user_id"] == "alice"  # the public id, never the namespaced one
        hits = tenants.call(tenant, "POST", "/v1/memories/search",
                            json={"user_id": "alice", "embedding": vector(1)}).json()["results"]
        assert [h["id"] for h in hits] == [own["id"]]
        assert hits[0]["user_id"] == "alice"
        page = tenants.call(tenant, "GET", "/v1/memories", params={"user_id": "alice"}).json()
        assert [m["id"] for m in page["results"]] == [own["id"]]
    assert tenants.call("a", "DELETE", "/v1/memories",
                        params={"user_id": "alice"}).json() == {"deleted": 1}
    assert tenants.call("b", "GET", f"/v1/memories/{b['id']}").status_code == 200


@pytest.mark.parametrize("bad", ["a\x1fb", "tab\there", "nul\x00", "del\x7f", "c1\x85"])
def test_control_characters_in_ids_are_refused(tenants: Tenants, bad: str) -> None:
    response = tenants.call("a", "POST", "/v1/memories",
                            json={"user_id": bad, "text": "x", "embedding": vector(0)})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "user_id"]
    listed = tenants.call("a", "GET", "/v1/memories", params={"user_id": bad})
    assert listed.status_code == 422


OPS = st.lists(st.tuples(
    st.sampled_from(["a", "b"]),
    st.sampled_from(["add", "search", "list", "get", "update", "delete", "history",
                     "delete_all"]),
    st.sampled_from(["alice", "bob"]),
    st.integers(0, 10**6),
), min_size=1, max_size=12)


def test_no_read_ever_returns_the_other_tenants_memory(tenants: Tenants) -> None:
    owner: dict[str, str] = {}  # memory id -> tenant, over every example

    def check(tenant: str, memories: list[dict]) -> None:
        for m in memories:
            assert owner.get(m["id"]) == tenant, (tenant, m)
            assert m["text"].startswith(f"{tenant}:"), m

    @settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(OPS)
    def run(ops: list[tuple[str, str, str, int]]) -> None:
        for tenant, op, user, seed in ops:
            known = sorted(owner)
            target = known[seed % len(known)] if known else MISSING_ID
            if op == "add":
                m = add(tenants, tenant, user, f"{tenant}:{seed}", seed)
                owner[m["id"]] = tenant
            elif op == "search":
                r = tenants.call(tenant, "POST", "/v1/memories/search",
                                 json={"user_id": user, "embedding": vector(seed), "limit": 100})
                check(tenant, r.json()["results"])
            elif op == "list":
                r = tenants.call(tenant, "GET", "/v1/memories", params={"user_id": user})
                check(tenant, r.json()["results"])
            elif op == "get":
                r = tenants.call(tenant, "GET", f"/v1/memories/{target}")
                if r.status_code == 200:
                    check(tenant, [r.json()])
                else:
                    assert r.status_code == 404
            elif op == "update":
                r = tenants.call(tenant, "PATCH", f"/v1/memories/{target}",
                                 json={"priority": seed % 11})
                if r.status_code == 200:
                    check(tenant, [r.json()])
                else:
                    assert r.status_code == 404
            elif op == "history":
                r = tenants.call(tenant, "GET", f"/v1/memories/{target}/history")
                if r.status_code == 200:
                    assert owner[target] == tenant
                    assert all(e["new_text"] is None or e["new_text"].startswith(f"{tenant}:")
                               for e in r.json()["results"])
                else:
                    assert r.status_code == 404
            elif op == "delete":
                r = tenants.call(tenant, "DELETE", f"/v1/memories/{target}")
                assert r.status_code in (204, 404)
                if r.status_code == 204:
                    assert owner[target] == tenant
            else:
                tenants.call(tenant, "DELETE", "/v1/memories", params={"user_id": user})
        # whatever happened, each tenant still sees exactly its own live memories
        for tenant in ("a", "b"):
            for user in ("alice", "bob"):
                page = tenants.call(tenant, "GET", "/v1/memories",
                                    params={"user_id": user, "limit": 1000}).json()
                check(tenant, page["results"])

    run()
    assert {"a", "b"} <= set(owner.values())  # both tenants really wrote
