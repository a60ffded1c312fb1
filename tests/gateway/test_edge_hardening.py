"""The edge against a hostile client, over real HTTP (issue 19, findings 1, 4 and 8).

Keyless API requests are refused before admission and before their body; a body that does not
arrive in time is cut off with 408; one tenant cannot hold every running slot of a class;
``X-Tenant-Id`` is not believed when keys are required; with authentication off only loopback
``Host`` values are served (DNS rebinding); the interactive docs can be turned off.
"""

from __future__ import annotations

import select
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from support import settings_for
from support.raw_http import status_of
from support.servers import serving

from gateway.admission.controller import AdmissionController
from gateway.admission.middleware import _tenant
from gateway.api.header_deadline import protocol
from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.settings import Settings
from gateway.triton import TritonServer

ANSWER_S = 20.0  # a refusal comes at once; this only bounds a broken (hanging) server
BODY_TIMEOUT_S = 1.0


@dataclass
class Gateway:
    url: str
    settings: Settings
    keys: dict[str, str]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def auth(self, tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant]}"}


def memories(settings: Settings) -> int:
    conn = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM memories").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def keyed(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Keys required, two ingest slots, a short body deadline."""
    settings = settings_for(triton, tmp_path_factory.mktemp("edge-keyed"), auth="required",
                            admission_ingest_limit=2, body_timeout_s=BODY_TIMEOUT_S)
    with KeyStore(settings.keys_path) as store:
        keys = {tenant: store.create(tenant, KeyScope.WRITE)[0].secret_key
                for tenant in ("acme", "globex")}
    with serving(settings, http=protocol(BODY_TIMEOUT_S)) as url:
        yield Gateway(url, settings, keys)


@pytest.fixture(scope="module")
def open_gateway(triton: TritonServer,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Authentication off (the loopback default)."""
    settings = settings_for(triton, tmp_path_factory.mktemp("edge-open"))
    assert not settings.auth_required
    with serving(settings) as url:
        yield Gateway(url, settings, {})


def connect(gateway: Gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=ANSWER_S)


def announce(path: str, length: int, extra: bytes = b"") -> bytes:
    """Request head announcing a body that is not sent (a slow-body client)."""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n").encode() + extra + b"\r\n"


def bearer_bytes(gateway: Gateway, tenant: str = "acme") -> bytes:
    return f"Authorization: Bearer {gateway.keys[tenant]}\r\n".encode()


# finding 1: keyless requests are refused before admission and before their body


@pytest.mark.parametrize("path", ["/v1/memories", "/v1/memories/search", "/v3/memories/add/",
                                  "/v1/feedback/"])
def test_a_keyless_request_is_refused_before_its_body(keyed: Gateway, path: str) -> None:
    with connect(keyed) as sock:
        sock.sendall(announce(path, 16 * 1024 * 1024 - 1))
        assert status_of(sock) == 401  # answered with the 16 MB still to come
        while sock.recv(65536):  # the rest of the answer; then the server closes
            pass


def test_keyless_slow_bodies_take_no_admission_slot(keyed: Gateway) -> None:
    before = memories(keyed.settings)
    socks = [connect(keyed) for _ in range(8)]  # four times the ingest limit
    try:
        for sock in socks:
            sock.sendall(announce("/v1/memories", 1_000_000))
        with httpx.Client(base_url=keyed.url, timeout=ANSWER_S) as http:
            made = http.post("/v1/memories", headers=keyed.auth(),
                             json={"user_id": "u", "text": "a keyed client is served"})
        assert made.status_code == 201, made.text
        assert [status_of(sock) for sock in socks] == [401] * len(socks)
    finally:
        for sock in socks:
            sock.close()
    assert memories(keyed.settings) == before + 1


def test_a_body_that_does_not_arrive_in_time_is_408(keyed: Gateway) -> None:
    before = memories(keyed.settings)
    with connect(keyed) as sock:
        sock.sendall(announce("/v1/memories", 1000, bearer_bytes(keyed)) + b'{"user_id": "u"')
        assert status_of(sock) == 408
    assert memories(keyed.settings) == before
    with httpx.Client(base_url=keyed.url, timeout=ANSWER_S) as http:  # and others are served
        found = http.post("/v1/memories/search", headers=keyed.auth(),
                          json={"user_id": "u", "query": "client"})
        assert found.status_code == 200


def test_headers_that_do_not_arrive_in_time_are_408(keyed: Gateway) -> None:
    with connect(keyed) as sock:  # slowloris: the request line, then nothing
        sock.sendall(b"POST /v1/memories HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len")
        assert status_of(sock) == 408
        while sock.recv(65536):  # and the connection is closed
            pass
    with connect(keyed) as sock:  # a connection that never sends a byte is closed too
        assert status_of(sock) == 408


def test_one_tenant_cannot_hold_every_running_slot(keyed: Gateway) -> None:
    """Two ingest slots: the second slow body of the same tenant is shed at once, so another
    tenant's add still runs."""
    socks = [connect(keyed) for _ in range(2)]
    try:
        for sock in socks:
            sock.sendall(announce("/v1/memories", 1000, bearer_bytes(keyed, "acme")))
        readable, _, _ = select.select(socks, [], [], BODY_TIMEOUT_S / 2)
        assert len(readable) == 1, "one of the two should be shed before the body deadline"
        assert status_of(readable[0]) == 429
        with httpx.Client(base_url=keyed.url, timeout=ANSWER_S) as http:
            made = http.post("/v1/memories", headers=keyed.auth("globex"),
                             json={"user_id": "u", "text": "another tenant is served"})
        assert made.status_code == 201, made.text
    finally:
        for sock in socks:
            sock.close()


def test_the_tenant_share_is_below_each_class_limit() -> None:
    controller = AdmissionController.from_settings(Settings(admission_ingest_limit=4,
                                                            admission_ingest_queue=16))
    share = controller.limiters["ingest"].tenants
    assert share is not None
    assert [share.admit("t") for _ in range(4)] == [None, None, None, "tenant_share"]


def test_x_tenant_id_is_not_believed_when_keys_are_required() -> None:
    headers = {b"x-tenant-id": b"someone-else"}
    assert _tenant({"query_string": b""}, headers) == "x-tenant-id:someone-else"
    assert _tenant({"query_string": b"user_id=u"}, headers, trust_client=False) == "anonymous"


def test_the_body_pace_rule() -> None:
    from gateway.api.body_deadline import BodyPace

    pace = BodyPace(started=100.0, timeout_s=30.0, min_bytes_per_s=1000.0, grace_s=5.0)
    assert pace.due(0) == 105.0  # the grace
    assert pace.due(2000) == 107.0  # 2 KB bought two seconds more
    assert pace.due(10**9) == 130.0  # never past the deadline
    assert BodyPace(started=0.0, timeout_s=30.0, min_bytes_per_s=0.0, grace_s=5.0).due(0) == 30


# finding 4: DNS rebinding while authentication is off


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "10.0.0.1"])
def test_a_foreign_host_is_refused_with_auth_off(open_gateway: Gateway, host: str) -> None:
    before = memories(open_gateway.settings)
    with httpx.Client(base_url=open_gateway.url, timeout=ANSWER_S) as http:
        made = http.post("/v1/memories", headers={"Host": host},
                         json={"user_id": "u", "text": "written through a rebound name"})
        listed = http.get("/v1/memories", headers={"Host": host}, params={"user_id": "*"})
    assert made.status_code == 421, made.text
    assert "host" in made.json()["detail"].lower()
    assert listed.status_code == 421
    assert memories(open_gateway.settings) == before


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST:1234", "[::1]:8080",
                                  "127.0.0.1:{port}"])
def test_a_loopback_host_is_served_with_auth_off(open_gateway: Gateway, host: str) -> None:
    with httpx.Client(base_url=open_gateway.url, timeout=ANSWER_S) as http:
        made = http.post("/v1/memories", headers={"Host": host.format(port=open_gateway.port)},
                         json={"user_id": "local", "text": "written from this machine"})
    assert made.status_code == 201, made.text


def test_allowed_hosts_add_names() -> None:
    from gateway.api.hosts import host_allowed

    assert host_allowed(b"memory.internal:8080", ("memory.internal",))
    assert not host_allowed(b"memory.internal.evil:8080", ("memory.internal",))
    assert not host_allowed(b"evil.example", ())
    assert host_allowed(b"[::1]", ())


# finding 8: endpoints without a key


def test_docs_can_be_turned_off() -> None:
    with_docs = TestClient(create_app(Settings()))
    assert with_docs.get("/openapi.json").status_code == 200
    without = TestClient(create_app(Settings(docs=False)))
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert without.get(path).status_code == 404, path


def test_what_answers_without_a_key(keyed: Gateway) -> None:
    with httpx.Client(base_url=keyed.url, timeout=ANSWER_S) as http:
        for path in ("/healthz", "/readyz", "/docs", "/redoc", "/openapi.json"):
            assert http.get(path).status_code == 200, path
        for method, path in (("POST", "/v1/feedback/"), ("GET", "/v2/profiles/settings/"),
                             ("GET", "/api/v1/webhooks/projects/p/")):
            refused = http.request(method, path)
            assert refused.status_code == 401, (method, path)
            assert refused.json()["detail"].startswith("missing API key")
        assert http.post("/v1/feedback/", headers=keyed.auth()).status_code == 501
