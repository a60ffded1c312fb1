"""The Mem0 routes at the HTTP level: exact paths without redirects, the double-slash ping,
errors as ``{"detail": ...}`` with the status codes the mem0ai client maps, and 501s."""

from __future__ import annotations

import http.client
import json
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.api.mem0.unsupported import ROUTES


@pytest.fixture
def api(gateway_url: str) -> httpx.Client:
    return httpx.Client(base_url=gateway_url, headers={"Authorization": "Token k"},
                        follow_redirects=False)


def test_double_slash_ping(gateway_url: str) -> None:
    """The raw request line AsyncMemoryClient sends when its host ends in "/"."""
    parts = urlsplit(gateway_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", "//v1/ping/", headers={"Authorization": "Token k"})
    response = conn.getresponse()
    assert response.status == 200
    body = json.loads(response.read())
    assert body["org_id"] and body["project_id"] and body["status"] == "ok"


def test_errors_are_detail_strings(api: httpx.Client) -> None:
    missing = api.get(f"/v1/memories/{uuid.uuid4()}/")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    malformed = api.get("/v1/memories/not-a-uuid/")
    assert malformed.status_code == 422 and "UUID" in malformed.json()["detail"]
    unknown_field = api.post("/v3/memories/search/", json={"query": "q", "filters": {
        "user_id": "u"}, "colour": "red"})
    assert unknown_field.status_code == 422
    assert unknown_field.json()["detail"][0]["loc"] == ["body", "colour"]
    blank = api.post("/v3/memories/add/", json={"messages": [{"role": "user", "content": " "}],
                                                 "user_id": "u"})
    assert blank.status_code == 422
    control = api.post("/v3/memories/add/", json={"messages": [{"role": "user",
                                                                 "content": "x"}],
                                                   "user_id": "a\x1fb"})
    assert control.status_code == 422 and "control" in control.json()["detail"]


def test_delete_all_reads_json_or_python_dicts(api: httpx.Client) -> None:
    user = f"qs-{uuid.uuid4().hex[:8]}"
    for text in ("one thing", "another thing"):
        api.post("/v3/memories/add/", json={"messages": [{"role": "user", "content": text}],
                                             "user_id": user, "metadata": {"text": text}})
    gone = api.delete("/v1/memories/", params={
        "filters": json.dumps({"user_id": user}), "metadata": repr({"text": "one thing"})})
    assert gone.json()["deleted"] == 1
    bad = api.delete("/v1/memories/", params={"filters": "{'user_id': __import__('os')}"})
    assert bad.status_code == 422 and "filters" in bad.json()["detail"]
    left = api.post("/v3/memories/", json={"filters": {"user_id": user}}).json()
    assert [m["memory"] for m in left["results"]] == ["another thing"]


def test_unsupported_routes_are_501_and_documented(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    for methods, path, what in ROUTES:
        concrete = path.format(entity_id="u", job_id="j", org_id="o", project_id="p",
                               webhook_id="1")
        for method in methods:
            response = api.request(method, concrete)
            assert response.status_code == 501, (method, concrete)
            assert what in response.json()["detail"]
            assert method.lower() in schema["paths"][path]


def test_every_client_path_is_served_without_redirect(api: httpx.Client) -> None:
    """A 3xx would break the client (it does not follow redirects)."""
    some = str(uuid.uuid4())
    calls = [("GET", "/v1/ping/"), ("POST", "/v3/memories/add/"),
             ("POST", "/v3/memories/search/"), ("POST", "/v3/memories/"),
             ("GET", f"/v1/memories/{some}/"), ("PUT", f"/v1/memories/{some}/"),
             ("DELETE", f"/v1/memories/{some}/"), ("GET", f"/v1/memories/{some}/history/"),
             ("DELETE", "/v1/memories/"), ("GET", "/v1/entities/"),
             ("DELETE", "/v2/entities/user/nobody/"), ("PUT", "/v1/batch/"),
             ("DELETE", "/v1/batch/"), ("POST", "/v1/memories/"), ("POST", "/v2/memories/"),
             ("POST", "/v2/memories/search/")]
    for method, path in calls:
        response = api.request(method, path, json={} if method in ("POST", "PUT") else None)
        assert response.status_code < 300 or response.status_code >= 400, (method, path)
        assert response.status_code not in (404, 405) or "not found" in response.text, \
            (method, path, response.text)
