"""Jobs, model versions and /metrics across tenants, over HTTP on the real gateway (auth
required, real SQLite): a tenant's admin key acts on its own tenant only; service-wide actions
need an operator key (issue 19, finding 3)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for
from support.jobs import listed, wait_done

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.triton import TritonServer

UNCLE = ["My uncle lives in Toronto.", "my uncle lives in toronto."]
WHO = {"acme_admin": ("acme", KeyScope.ADMIN), "acme": ("acme", KeyScope.WRITE),
       "globex": ("globex", KeyScope.WRITE), "ops": ("ops", KeyScope.OPERATOR)}


@dataclass
class Service:
    client: TestClient
    keys: dict[str, str]

    def call(self, who: str, method: str, path: str, **kwargs: object):
        return self.client.request(method, path, **kwargs,  # type: ignore[arg-type]
                                   headers={"Authorization": f"Bearer {self.keys[who]}"})

    def add_twins(self, who: str, user: str) -> None:
        """Two near-duplicates of ``user`` (a merge folds them into one)."""
        response = self.call(who, "POST", "/v1/memories/batch", json={
            "dedup": False, "items": [{"user_id": user, "text": t} for t in UNCLE]})
        assert response.status_code == 201, response.text

    def count(self, who: str, user: str) -> int:
        page = self.call(who, "GET", "/v1/memories", params={"user_id": user})
        assert page.status_code == 200, page.text
        return len(page.json()["results"])

    def wait(self, who: str, job_id: str) -> dict:
        return wait_done(_As(self, who), job_id)


class _As:
    """An ``Http`` for ``wait_done`` that sends one caller's key."""

    def __init__(self, service: Service, who: str) -> None:
        self.service, self.who = service, who

    def get(self, url: str, **kwargs: object):
        return self.service.call(self.who, "GET", url, **kwargs)


@pytest.fixture
def service(triton: TritonServer, tmp_path: Path) -> Iterator[Service]:
    settings = settings_for(triton, tmp_path / "data", auth="required")
    with KeyStore(settings.keys_path) as store:
        keys = {who: store.create(tenant, scope)[0].secret_key
                for who, (tenant, scope) in WHO.items()}
    with TestClient(create_app(settings)) as client:
        yield Service(client, keys)


def test_a_tenant_admin_merges_its_own_tenant_only(service: Service) -> None:
    service.add_twins("acme", "alice")
    service.add_twins("globex", "bob")
    started = service.call("acme_admin", "POST", "/v1/jobs", json={"kind": "merge"})
    assert started.status_code == 202, started.text
    assert (started.json()["user_id"], started.json()["tenant"]) == (None, "acme")
    job = service.wait("acme_admin", started.json()["id"])
    assert job["status"] == "done" and job["progress"]["users_done"] == 1, job
    assert service.count("acme", "alice") == 1
    assert service.count("globex", "bob") == 2  # another tenant's users: untouched


def test_a_tenant_admin_sees_its_own_tenants_jobs_only(service: Service) -> None:
    theirs = service.call("globex", "POST", "/v1/jobs", json={"kind": "merge", "user_id": "bob"})
    assert theirs.status_code == 202, theirs.text
    mine = service.call("acme", "POST", "/v1/jobs", json={"kind": "merge", "user_id": "alice"})
    listing = service.call("acme_admin", "GET", "/v1/jobs")
    assert listing.status_code == 200
    jobs = listing.json()
    assert [j["id"] for j in jobs] == [mine.json()["id"]]
    assert all("\x1f" not in (j["user_id"] or "") for j in jobs)
    assert "globex" not in listing.text
    assert service.call("acme_admin", "GET",
                        f"/v1/jobs/{theirs.json()['id']}").status_code == 404
    assert service.call("globex", "GET", f"/v1/jobs/{theirs.json()['id']}").status_code == 200


def test_model_versions_and_metrics_need_the_operator(service: Service) -> None:
    activate = {"version": "1"}
    for who in ("acme_admin", "acme"):
        assert service.call(who, "GET", "/v1/admin/models").status_code == 403, who
        refused = service.call(who, "POST", "/v1/admin/models/embedder/activate", json=activate)
        assert refused.status_code == 403, who
        assert "operator" in refused.json()["detail"]
        assert service.call(who, "POST", "/v1/admin/models/embedder/abandon").status_code == 403
        assert service.call(who, "GET", "/metrics").status_code == 403, who
    assert service.client.get("/metrics").status_code == 401
    assert service.call("ops", "GET", "/v1/admin/models").status_code == 200
    metrics = service.call("ops", "GET", "/metrics")
    assert metrics.status_code == 200 and "memory_query_cache" in metrics.text


def test_the_operator_runs_and_sees_jobs_over_every_tenant(service: Service) -> None:
    service.add_twins("acme", "alice")
    service.add_twins("globex", "bob")
    theirs = service.call("globex", "POST", "/v1/jobs", json={"kind": "expire", "user_id": "bob"})
    started = service.call("ops", "POST", "/v1/jobs", json={"kind": "merge"})
    assert started.status_code == 202 and started.json()["tenant"] is None
    job = service.wait("ops", started.json()["id"])
    assert job["status"] == "done" and job["progress"]["users_done"] == 2, job
    assert service.count("acme", "alice") == service.count("globex", "bob") == 1
    seen = {j["id"]: j for j in service.call("ops", "GET", "/v1/jobs").json()}
    assert seen[theirs.json()["id"]]["tenant"] == "globex"
    assert seen[theirs.json()["id"]]["user_id"] == "bob"  # the public id, with its tenant
    assert service.call("ops", "GET", f"/v1/jobs/{theirs.json()['id']}").status_code == 200


def test_only_the_operator_prunes(service: Service) -> None:
    refused = service.call("acme_admin", "POST", "/v1/jobs", json={"kind": "prune"})
    assert refused.status_code == 403
    assert service.call("ops", "POST", "/v1/jobs",
                        json={"kind": "prune", "user_id": "x"}).status_code == 422
    job = service.wait("ops", service.call("ops", "POST", "/v1/jobs",
                                           json={"kind": "prune"}).json()["id"])
    assert job["status"] == "done", job
    assert set(job["progress"]) >= {"jobs", "events", "history"}


def test_auth_off_keeps_the_anonymous_caller_an_operator(client: TestClient) -> None:
    assert client.get("/v1/admin/models").status_code == 200
    assert client.get("/metrics").status_code == 200
    for user in ("alice", "bob"):
        client.post("/v1/memories/batch", json={
            "dedup": False, "items": [{"user_id": user, "text": t} for t in UNCLE]})
    job = wait_done(client, client.post("/v1/jobs", json={"kind": "merge"}).json()["id"])
    assert job["progress"]["users_done"] == 2 and job["tenant"] is None
    assert len(listed(client, "alice")) == len(listed(client, "bob")) == 1
