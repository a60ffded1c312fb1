"""Basics on every answer: request id, security headers, CORS off unless allowed, and no memory
text or key in the logs at INFO."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for

from gateway.api.security import REQUEST_ID_MAX, RequestIdFilter
from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.settings import Settings
from gateway.triton import TritonServer

SECRET_TEXT = "my locker code is 4417-zebra-quartz"


def test_every_answer_carries_a_request_id_and_security_headers(client: TestClient) -> None:
    answers = [
        client.get("/healthz"),
        client.post("/v1/memories", json={"user_id": "a", "text": "hello"}),  # 201
        client.post("/v1/memories", json={"user_id": "a"}),  # 422
        client.get("/v1/memories/nope", params={"user_id": "a"}),  # 404
        client.post("/v1/memories", content=b"{bad json", headers={"content-type":
                                                                    "application/json"}),
        client.get("/no/such/route"),
    ]
    ids = set()
    for response in answers:
        rid = response.headers["X-Request-Id"]
        assert 16 <= len(rid) <= REQUEST_ID_MAX, rid
        ids.add(rid)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert len(ids) == len(answers), "request ids repeat"
    # the docs page loads Swagger UI from a CDN: no CSP that would blank it
    assert "Content-Security-Policy" not in client.get("/docs").headers


def test_client_request_id_kept_when_plain_replaced_when_hostile(client: TestClient) -> None:
    plain = "trace-01HXYZ.abc:42"
    assert client.get("/healthz", headers={"X-Request-Id": plain}).headers["X-Request-Id"] == plain
    for hostile in ["x" * (REQUEST_ID_MAX + 1), "a b", "id\twith-tab", "<script>", "é-id", ""]:
        rid = client.get("/healthz", headers={"X-Request-Id": hostile.encode("utf-8")}
                         ).headers["X-Request-Id"]
        assert rid != hostile and rid.isalnum() and len(rid) == 32, (hostile, rid)


def test_cors_is_off_by_default(client: TestClient) -> None:
    preflight = client.options("/v1/memories", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allow_list(triton: TritonServer, tmp_path: Path) -> None:
    allowed = "https://app.example"
    settings = settings_for(triton, tmp_path / "data", cors_allow_origins=[allowed])
    with TestClient(create_app(settings)) as api:
        ok = api.options("/v1/memories", headers={
            "Origin": allowed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == allowed
        assert "X-Request-Id" in ok.headers
        refused = api.options("/v1/memories", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        simple = api.get("/healthz", headers={"Origin": allowed})
        assert simple.headers["access-control-allow-origin"] == allowed
        assert "X-Request-Id" in simple.headers["access-control-expose-headers"]


def test_no_memory_text_or_key_in_logs_at_info(triton: TritonServer, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(triton, tmp_path / "data", auth="required")
    with KeyStore(settings.keys_path) as keys:
        key = keys.create("acme", KeyScope.WRITE)[0].secret_key
    auth = {"Authorization": f"Bearer {key}"}
    handler_filter = RequestIdFilter()
    caplog.handler.addFilter(handler_filter)
    caplog.set_level(logging.INFO)
    try:
        with TestClient(create_app(settings)) as api:
            added = api.post("/v1/memories", json={"user_id": "bob", "text": SECRET_TEXT,
                                                   "metadata": {"pin": "zebra-quartz"}},
                             headers={**auth, "X-Request-Id": "req-under-test"})
            assert added.status_code == 201, added.text
            memory_id = added.json()["id"]
            assert api.post("/v1/memories/search", json={"user_id": "bob",
                            "query": "what is the locker code"}, headers=auth).status_code == 200
            assert api.patch(f"/v1/memories/{memory_id}", params={"user_id": "bob"},
                             json={"text": SECRET_TEXT + " now"}, headers=auth
                             ).status_code == 200
            assert api.post("/v1/memories", json={"user_id": "bob", "text": SECRET_TEXT},
                            headers={"Authorization": "Bearer amk_wrong_" + key[-20:]}
                            ).status_code == 401
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert caplog.records, "nothing was logged: the check would prove nothing"
    access = [r for r in caplog.records if r.name == "gateway.access"]
    assert any(r.request_id == "req-under-test" and "/v1/memories 201" in r.getMessage()
               for r in access), [r.getMessage() for r in access]
    # the server's own records (the test's HTTP client logs its URLs, query string included)
    server_text = "\n".join(r.getMessage() for r in caplog.records
                            if r.name.startswith(("gateway", "uvicorn", "fastapi")))
    for needle in ("locker", "zebra-quartz", key, key[-20:], "bob", "what is the"):
        assert needle not in server_text, needle


def test_even_a_bug_answers_with_a_request_id(settings: Settings) -> None:
    app = create_app(settings)

    async def boom() -> None:
        raise ZeroDivisionError("a bug")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as api:
        response = api.get("/boom", headers={"X-Request-Id": "bug-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    assert response.headers["X-Request-Id"] == "bug-1"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
