"""API keys: which keys get in (Bearer, Token, X-API-Key), which get 401, scope checks (403),
auth mode defaults, per-key rates, the keys CLI, and keys never reaching the logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.keys import app as keys_cli
from gateway.settings import Settings
from gateway.triton import TritonServer

ADD = {"user_id": "alice", "text": "I like green tea", "embedding": [0.5] * 384}


@pytest.fixture
def auth_settings(triton: TritonServer, tmp_path: Path) -> Settings:
    return settings_for(triton, tmp_path / "data", auth="required")


@pytest.fixture
def keys(auth_settings: Settings) -> Iterator[KeyStore]:
    with KeyStore(auth_settings.keys_path) as store:
        yield store


@pytest.fixture
def api(auth_settings: Settings, keys: KeyStore) -> Iterator[TestClient]:
    with TestClient(create_app(auth_settings)) as client:
        yield client


def make_key(keys: KeyStore, scope: KeyScope = KeyScope.WRITE, tenant: str = "acme",
             **kwargs: object) -> str:
    new, _ = keys.create(tenant, scope, **kwargs)  # type: ignore[arg-type]
    return new.secret_key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_three_ways_to_present_a_key(api: TestClient, keys: KeyStore) -> None:
    key = make_key(keys)
    for headers in (bearer(key), {"Authorization": f"Token {key}"},
                    {"authorization": f"bearer {key}"}, {"X-API-Key": key}):
        response = api.post("/v1/memories", json=ADD, headers=headers)
        assert response.status_code == 201, (headers, response.text)


def test_missing_key_is_401_and_changes_nothing(api: TestClient, keys: KeyStore) -> None:
    response = api.post("/v1/memories", json=ADD)
    assert response.status_code == 401
    assert "missing API key" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    listed = api.get("/v1/memories", params={"user_id": "alice"}, headers=bearer(make_key(keys)))
    assert listed.json()["results"] == []


def test_invalid_keys_are_401(api: TestClient, keys: KeyStore) -> None:
    good = make_key(keys)
    revoked = make_key(keys)
    _, record = keys.create("acme", KeyScope.WRITE)
    keys.revoke(revoked.split("_")[1])
    past = datetime.now(UTC) - timedelta(days=2)
    expired, _ = keys.create("acme", KeyScope.WRITE, expires_at=past + timedelta(days=1),
                             now=past)
    wrong_secret = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    unknown_id = "amk_" + "0" * 12 + good[16:]
    cases = {
        "revoked": (bearer(revoked), "API key revoked"),
        "expired": (bearer(expired.secret_key), "API key expired"),
        "wrong secret": (bearer(wrong_secret), "invalid API key"),
        "unknown id": (bearer(unknown_id), "invalid API key"),
        "malformed": (bearer("not-a-key"), "invalid API key"),
        "overlong": (bearer(good + "x" * 200), "invalid API key"),
        "non-ASCII": ({"X-API-Key": good[:-1] + "é"}, "invalid API key"),
        "other scheme": ({"Authorization": f"Basic {good}"}, "invalid API key"),
        "empty bearer": ({"Authorization": "Bearer "}, "invalid API key"),
    }
    for name, (headers, detail) in cases.items():
        encoded = {k: v.encode("utf-8") for k, v in headers.items()}  # non-ASCII as raw bytes
        response = api.post("/v1/memories", json=ADD, headers=encoded)  # type: ignore[arg-type]
        assert response.status_code == 401, name
        assert response.json()["detail"].startswith(detail), (name, response.json())
        assert "www-authenticate" in response.headers, name
    assert api.get("/v1/memories", params={"user_id": "alice"},
                   headers=bearer(good)).json()["results"] == []


def test_unknown_and_wrong_keys_take_the_same_path(keys: KeyStore, auth_settings: Settings,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Both do one lookup and one constant-time comparison (no early exit that a clock
    could see)."""
    import hmac

    from gateway.auth import keys as key_module

    compared: list[str] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append("compare")
        return real(a, b)

    monkeypatch.setattr(key_module.hmac, "compare_digest", spy)
    looked_up: list[str] = []
    real_find = KeyStore.find

    def find(self: KeyStore, key_id: str):
        looked_up.append(key_id)
        return real_find(self, key_id)

    monkeypatch.setattr(KeyStore, "find", find)
    good = make_key(keys)
    with TestClient(create_app(auth_settings)) as api:
        for key in (good[:-4] + "AAAA", "amk_" + "0" * 12 + good[16:]):
            assert api.get("/v1/memories", params={"user_id": "a"},
                           headers=bearer(key)).status_code == 401
    assert len(looked_up) == 2 and compared == ["compare", "compare"]


def test_scopes_read_write_admin(api: TestClient, keys: KeyStore) -> None:
    read, write, admin, operator = (make_key(keys, s) for s in KeyScope)
    assert api.post("/v1/memories", json=ADD, headers=bearer(read)).status_code == 403
    created = api.post("/v1/memories", json=ADD, headers=bearer(write))
    assert created.status_code == 201
    memory_id = created.json()["id"]
    forbidden = api.delete(f"/v1/memories/{memory_id}", headers=bearer(read))
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"] == "this API key has scope 'read'; this call needs 'write'"
    assert api.get(f"/v1/memories/{memory_id}", headers=bearer(read)).status_code == 200
    assert api.patch(f"/v1/memories/{memory_id}", json={"priority": 1},
                     headers=bearer(read)).status_code == 403
    assert api.get("/v1/admin/models", headers=bearer(write)).status_code == 403
    # model versions are the whole service's: a tenant's admin key is refused (issue 19)
    assert api.get("/v1/admin/models", headers=bearer(admin)).status_code == 403
    assert api.get("/v1/admin/models", headers=bearer(operator)).status_code == 200
    assert api.get("/v1/admin/models").status_code == 401
    # admin includes write
    assert api.delete(f"/v1/memories/{memory_id}", headers=bearer(admin)).status_code == 204


def test_health_and_docs_need_no_key(api: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert api.get(path).status_code == 200, path


def test_metrics_need_an_operator_key(api: TestClient, keys: KeyStore) -> None:
    assert api.get("/metrics").status_code == 401
    assert api.get("/metrics", headers=bearer(make_key(keys, KeyScope.ADMIN))).status_code == 403
    operator = make_key(keys, KeyScope.OPERATOR, tenant="ops")
    assert api.get("/metrics", headers=bearer(operator)).status_code == 200


def test_auth_mode_follows_the_bind_address() -> None:
    assert not Settings(host="127.0.0.1").auth_required
    assert not Settings(host="::1").auth_required
    assert not Settings(host="localhost").auth_required
    assert Settings(host="0.0.0.0").auth_required
    assert Settings(host="10.1.2.3").auth_required
    assert Settings(host="memory.internal").auth_required
    assert not Settings(host="0.0.0.0", auth="off").auth_required
    assert Settings(host="127.0.0.1", auth="required").auth_required


def test_auth_off_needs_no_key_and_is_the_default_tenant(client: TestClient) -> None:
    created = client.post("/v1/memories", json=ADD, headers=bearer("ignored"))
    assert created.status_code == 201
    assert created.json()["user_id"] == "alice"


def test_a_key_with_a_rate_is_limited(api: TestClient, keys: KeyStore) -> None:
    slow = make_key(keys, rate_per_s=0.01)  # a burst of one, then one per 100 s
    other = make_key(keys)
    params = {"user_id": "alice"}
    assert api.get("/v1/memories", params=params, headers=bearer(slow)).status_code == 200
    shed = api.get("/v1/memories", params=params, headers=bearer(slow))
    assert shed.status_code == 429
    assert shed.headers["retry-after"] == "100"
    assert "rate" in shed.json()["detail"]
    assert api.get("/v1/memories", params=params, headers=bearer(other)).status_code == 200
    metrics = api.get("/metrics", headers=bearer(make_key(keys, KeyScope.OPERATOR))).text
    assert 'reason="key_rate"' in metrics


def test_admission_counts_the_key_tenant() -> None:
    from gateway.admission.middleware import _tenant
    from gateway.auth.principal import Principal

    principal = Principal("acme", KeyScope.READ, key_id="abc")
    scope = {"auth": principal, "query_string": b"user_id=alice"}
    assert _tenant(scope, {}) == "tenant:acme"
    assert _tenant({"query_string": b"user_id=alice"}, {b"x-api-key": b"amk_secret"}) \
        == "user:alice"


def test_keys_never_reach_the_logs(api: TestClient, keys: KeyStore,
                                   caplog: pytest.LogCaptureFixture) -> None:
    good = make_key(keys)
    caplog.set_level(logging.DEBUG)
    bad = good[:-4] + "AAAA"
    api.post("/v1/memories", json=ADD, headers=bearer(good))
    api.post("/v1/memories", json=ADD, headers=bearer(bad))
    api.get("/v1/memories", params={"user_id": "alice"}, headers={"X-API-Key": good})
    assert caplog.records, "nothing was logged: the check would prove nothing"
    for secret in (good, bad, good[17:]):  # [17:]: the part after "amk_<12 hex>_"
        assert secret not in caplog.text


def test_keys_cli_create_list_revoke(auth_settings: Settings) -> None:
    runner = CliRunner()
    path = str(auth_settings.keys_path)
    created = runner.invoke(keys_cli, ["create", "--tenant", "acme", "--scope", "read",
                                       "--expires", "30d", "--name", "ci", "--keys", path])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    key_id = key.split("_")[1]
    assert key.startswith("amk_") and key not in created.stderr
    with TestClient(create_app(auth_settings)) as api:
        assert api.get("/v1/memories", params={"user_id": "a"},
                       headers=bearer(key)).status_code == 200
        listed = runner.invoke(keys_cli, ["list", "--keys", path], env={"COLUMNS": "200"})
        assert key_id in listed.stdout and "acme" in listed.stdout and key not in listed.stdout
        revoked = runner.invoke(keys_cli, ["revoke", key_id, "--keys", path])
        assert revoked.exit_code == 0
        # the running gateway sees the revocation on the next request
        response = api.get("/v1/memories", params={"user_id": "a"}, headers=bearer(key))
        assert response.status_code == 401 and response.json()["detail"] == "API key revoked"
    assert runner.invoke(keys_cli, ["revoke", key_id, "--keys", path]).exit_code == 1
    for bad in (["--tenant", "a b"], ["--tenant", "t", "--scope", "root"],
                ["--tenant", "t", "--expires", "yesterday"]):
        assert runner.invoke(keys_cli, ["create", *bad, "--keys", path]).exit_code == 2
    with KeyStore(auth_settings.keys_path) as store:
        stored = store.all()
    assert [r.key_id for r in stored] == [key_id]
    assert key not in auth_settings.keys_path.read_bytes().decode("latin-1")
