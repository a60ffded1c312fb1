"""The hostile-input matrix (docs/operations.md, "Hostile input"): each kind of hostile
request gets its defined answer over real HTTP (uvicorn, auth required), and leaves the store
unchanged unless the row says it stores the input (normalised as every text is: NFC, control
characters stripped).

Every kind here is a row of that table; ``test_docs_list_every_kind`` keeps them in step.
"""

from __future__ import annotations

import json
import resource
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from support import settings_for
from support.raw_http import status_of
from support.servers import serving

from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.domain.normalise import normalise_text
from gateway.settings import ROOT, Settings
from gateway.triton import TritonServer

USER = "victim"
MAX_BODY = 256 * 1024  # a small cap for this gateway, so oversize bodies are cheap to send
SLOW_CONNECTIONS = 50
IDLE_CONNECTIONS = 2000
BODY_TIMEOUT_S = 2.0  # short, so the slow-body row is answered quickly


@dataclass
class Live:
    url: str
    key: str
    settings: Settings
    admin: str = ""  # an admin-scope key of the same tenant (acme)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def live(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    settings = settings_for(triton, tmp_path_factory.mktemp("hostile"), auth="required",
                            max_body_bytes=MAX_BODY, body_timeout_s=BODY_TIMEOUT_S)
    with KeyStore(settings.keys_path) as keys:
        key = keys.create("acme", KeyScope.WRITE)[0].secret_key
        admin = keys.create("acme", KeyScope.ADMIN)[0].secret_key
    with serving(settings) as url:
        with httpx.Client(base_url=url) as http:
            seeded = http.post("/v1/memories", headers={"Authorization": f"Bearer {key}"},
                               json={"user_id": USER, "text": "the vault code is 1234"})
            assert seeded.status_code == 201, seeded.text
        yield Live(url, key, settings, admin)


def _snapshot(settings: Settings) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{settings.db_path}?mode=ro", uri=True)
    try:
        return (conn.execute("SELECT count(*) FROM memories").fetchone()[0],
                conn.execute("SELECT count(*) FROM history").fetchone()[0])
    finally:
        conn.close()


def raw(live: Live, request: bytes, timeout: float = 10.0) -> int:
    """Send raw bytes; the status code of the answer (0: the server closed without one)."""
    with socket.create_connection(("127.0.0.1", live.port), timeout=timeout) as sock:
        sock.sendall(request)
        return status_of(sock)


def post(path: str, body: object = None, *, content: bytes | None = None,
         headers: dict[str, str] | None = None) -> Callable[[Live, httpx.Client], int]:
    def send(live: Live, http: httpx.Client) -> int:
        all_headers = live.auth | (headers or {})
        if content is not None:
            all_headers.setdefault("content-type", "application/json")
            return http.post(path, content=content, headers=all_headers).status_code
        return http.post(path, json=body, headers=all_headers).status_code
    return send


def get(path: str, params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None) -> Callable[[Live, httpx.Client], int]:
    def send(live: Live, http: httpx.Client) -> int:
        return http.get(path, params=params, headers=live.auth | (headers or {})).status_code
    return send


def delete(path: str, params: dict | None = None) -> Callable[[Live, httpx.Client], int]:
    def send(live: Live, http: httpx.Client) -> int:
        return http.delete(path, params=params, headers=live.auth).status_code
    return send


def as_admin(method: str, path: str, body: object = None) -> Callable[[Live, httpx.Client], int]:
    """A request with the tenant's admin key (not the operator's)."""
    def send(live: Live, http: httpx.Client) -> int:
        return http.request(method, path, json=body,
                            headers={"Authorization": f"Bearer {live.admin}"}).status_code
    return send


def raw_request(build: Callable[[Live], bytes]) -> Callable[[Live, httpx.Client], int]:
    return lambda live, _: raw(live, build(live))


def add(text: object = "fine", **fields: object) -> Callable[[Live, httpx.Client], int]:
    return post("/v1/memories", {"user_id": USER, "text": text, **fields})


def search(query: str, **fields: object) -> Callable[[Live, httpx.Client], int]:
    return post("/v1/memories/search", {"user_id": USER, "query": query, **fields})


def chunked(live: Live, http: httpx.Client) -> int:
    def body() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 1024 + 8):
            yield b" " * 1024

    return http.post("/v1/memories", content=body(), headers=live.auth | {
        "content-type": "application/json"}).status_code


def _deep(levels: int) -> bytes:
    return b'{"user_id": "victim", "text": "x", "metadata": {"a": ' + b"[" * levels + \
        b"]" * levels + b"}}"


def _nested_metadata(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"k": value}
    return value


@dataclass(frozen=True)
class Kind:
    name: str  # as in the docs/operations.md table
    send: Callable[[Live, httpx.Client], int]
    expect: frozenset[int]
    stores: bool = False  # accepted as data and stored, normalised (else: nothing changes)


def kind(name: str, send: Callable[[Live, httpx.Client], int], *expect: int,
         stores: bool = False) -> Kind:
    return Kind(name, send, frozenset(expect), stores)


AUTH_BYTES = b"Authorization: Bearer %s\r\n"


def _with_auth(live: Live, head: bytes, body: bytes = b"") -> bytes:
    return head + AUTH_BYTES % live.key.encode() + \
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body


KINDS = [
    # sizes and numbers
    kind("oversize body (Content-Length)", post("/v1/memories", content=b" " * (MAX_BODY + 1)),
         413),
    kind("oversize body (chunked, no length)", chunked, 413),
    kind("deep JSON (100k nested arrays)", post("/v1/memories", content=_deep(100_000)), 400),
    kind("metadata nested past 8 levels", add(metadata=_nested_metadata(12)), 422),
    kind("metadata over 16 KB", add(metadata={"k": "x" * 20_000}), 422),
    kind("huge number (1e400)", post("/v1/memories", content=b'{"user_id": "victim", '
                                     b'"text": "x", "priority": 1e400}'), 422),
    kind("huge integer (10**100)", add(priority=10**100), 422),
    kind("NaN in metadata", post("/v1/memories", content=b'{"user_id": "victim", '
                                 b'"text": "x", "metadata": {"a": NaN}}'), 422),
    kind("Infinity in an embedding", post("/v1/memories", content=b'{"user_id": "victim", '
                                          b'"text": "x", "embedding": [Infinity, 1.0]}'), 422),
    kind("-Infinity threshold", post("/v1/memories/search", content=b'{"user_id": "victim", '
                                     b'"query": "x", "threshold": -Infinity}'), 422),
    kind("embedding of 100k dimensions", add(embedding=[0.1] * 100_000), 413),
    kind("embedding of the wrong dimension", add(embedding=[0.1] * 7), 422),
    kind("batch over 1,000 items", post("/v1/memories/batch", {"items": [
        {"user_id": USER, "text": "x"}] * 1001}), 422),
    kind("search limit 10**9", search("vault", limit=10**9), 422),
    kind("33 metadata filters", search("vault", filters={"metadata": {
        f"k{i}": i for i in range(33)}}), 422),
    kind("metadata filter value over 16 KB", search("vault", filters={"metadata": {
        "k": "v" * 20_000}}), 422),
    kind("created_after before year 1 in UTC", search(
        "vault", filters={"created_after": "0001-01-01T00:00:00+01:00"}), 422),
    kind("mem0: metadata key on /v1", add(metadata={"mem0:app_id": "forged"}), 422),
    kind("Mem0 filter bomb (600 metadata keys)", post("/v2/memories/search/", {
        "query": "vault", "filters": {"user_id": USER, "metadata": {
            f"k{i}": {"ne": i} for i in range(600)}}}), 422),
    kind("Mem0 filter bomb (1,100 'in' values)", post("/v2/memories/", {"filters": {
        "user_id": USER, "metadata": {"k": {"in": list(range(1_100))}}}}), 422),
    kind("Mem0 created_at before year 1 in UTC", post("/v2/memories/search/", {
        "query": "vault", "filters": {"user_id": USER, "created_at": {
            "gte": "0001-01-01T00:00:00+01:00"}}}), 422),
    # text content
    kind("lone surrogate in text", post("/v1/memories", content=b'{"user_id": "victim", '
                                        b'"text": "a\\ud800b"}'), 422),
    kind("lone surrogate in a metadata key", post("/v1/memories", content=b'{"user_id": '
                                                  b'"victim", "text": "x", "metadata": '
                                                  b'{"\\udfff": 1}}'), 422),
    kind("NUL byte in text", add("before\u0000after"), 201, stores=True),  # stripped
    kind("NUL byte in user_id", post("/v1/memories", {"user_id": "vic\u0000tim", "text": "x"}),
         422),
    kind("control characters in user_id", post("/v1/memories", {"user_id": "a\x1fb",
                                                                "text": "x"}), 422),
    kind("RTL override and zero-width text", add("\u202eevil\u200b\u200dtext\u2066"), 201,
         stores=True),
    kind("zero-width-only user_id", post("/v1/memories", {"user_id": "\u200b", "text": "x"}),
         201, stores=True),
    kind("whitespace-only text", add(" \t\n "), 422),
    kind("100k-character single token", add("a" * 100_000), 422),
    kind("8,000-character single token (the limit)", add("b" * 8_000), 201, stores=True),
    kind("combining-character flood", add("e" + "\u0301" * 7_000), 201, stores=True),
    # encodings and shapes
    kind("invalid UTF-8 in the body", post("/v1/memories", content=b'{"user_id": "victim", '
                                           b'"text": "\xff\xfe"}'), 400),
    kind("UTF-16 body", post("/v1/memories", content=json.dumps(
        {"user_id": USER, "text": "x"}).encode("utf-16")), 201, stores=True),
    kind("not JSON at all", post("/v1/memories", content=b"<xml>hello</xml>"), 400),
    kind("empty body", post("/v1/memories", content=b""), 422),
    kind("JSON array instead of an object", post("/v1/memories", content=b"[1, 2, 3]"), 422),
    kind("wrong content type", post("/v1/memories", content=b'{"user_id": "victim", '
                                    b'"text": "x"}', headers={"content-type": "text/plain"}),
         422),
    kind("unknown fields", add(admin=True), 422),
    kind("wrong types (user_id as object)", post("/v1/memories", {"user_id": {"$ne": 1},
                                                                  "text": "x"}), 422),
    # ids, paths and query strings
    kind("path traversal in a memory id", get("/v1/memories/..%2F..%2Fetc%2Fpasswd",
                                              {"user_id": USER}), 404),
    kind("dot-dot path segments", raw_request(lambda live: _with_auth(
        live, b"GET /v1/memories/../../../etc/passwd?user_id=victim HTTP/1.1\r\n"
              b"Host: x\r\n")), 404),
    kind("SQL in a memory id", get("/v1/memories/' OR 1=1 --", {"user_id": USER}), 422),
    kind("SQL in user_id", get("/v1/memories", {"user_id": "x' OR '1'='1"}), 200),
    kind("FTS operators in a keyword query", search('NEAR("vault" code) AND OR NOT * ^ "',
                                                    mode="keyword"), 200),
    kind("FTS column filter and quotes", search('body: "vault" {text} -code', mode="hybrid"),
         200),
    kind("LIKE wildcards in a metadata filter", search("vault", filters={"metadata": {
        "%": "_%"}}), 200),
    kind("invalid UTF-8 in the query string", raw_request(lambda live: _with_auth(
        live, b"GET /v1/memories?user_id=%ff%fe%fd HTTP/1.1\r\nHost: x\r\n")), 200),
    kind("raw non-ASCII bytes in the query string", raw_request(lambda live: _with_auth(
        live, b"GET /v1/memories?user_id=\xff\xfe HTTP/1.1\r\nHost: x\r\n")), 400),
    kind("100 KB query string", raw_request(lambda live: _with_auth(
        live, b"GET /v1/memories?user_id=" + b"u" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n")),
         400),
    kind("20 KB query string", raw_request(lambda live: _with_auth(
        live, b"GET /v1/memories?user_id=" + b"u" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n")),
         414),
    kind("garbage paging cursor", get("/v1/memories", {"user_id": USER, "cursor": "!!!"}), 422),
    # erasure (issue 19, finding 9)
    kind("erase flag not a boolean", delete("/v1/memories", {"user_id": USER, "erase": "maybe"}),
         422),
    kind("erase of a missing memory id", delete("/v1/memories/01900000-0000-7000-8000-"
                                                "000000000000", {"erase": "true"}), 404),
    # headers
    kind("invalid UTF-8 in the Authorization header", raw_request(lambda live: (
        b"GET /v1/memories?user_id=victim HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        b"\xff\xfe\r\nConnection: close\r\n\r\n")), 401),
    kind("10 KB API key", get("/v1/memories", {"user_id": USER}, {"Authorization": "Bearer "
                                                                  + "k" * 10_000}), 401),
    kind("64 KB header", get("/v1/memories", {"user_id": USER}, {"X-Junk": "j" * 65_536}),
         431),
    kind("garbage X-Deadline-Ms", get("/v1/memories", {"user_id": USER},
                                      {"X-Deadline-Ms": "soon"}), 422),
    kind("CRLF in a request id", raw_request(lambda live: _with_auth(
        live, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\rSet-Cookie: x\r\n")),
         400),
    # the edge (issue 19): answered before the body, which never comes
    kind("keyless request announcing a body it never sends", raw_request(lambda live: (
        b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200000\r\n\r\n")), 401),
    kind("keyed body that stops arriving", raw_request(lambda live: (
        b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + AUTH_BYTES % live.key.encode() + b"Content-Length: 1000\r\n\r\n{\"user_id\"")),
         408),
    kind("Mem0 501 route without a key", raw_request(lambda live: (
        b"POST /v1/feedback/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")), 401),
    # scopes: a tenant's admin key is not the service's operator (issue 19)
    kind("model activation with a tenant's admin key", as_admin(
        "POST", "/v1/admin/models/embedder/activate", {"version": "1"}), 403),
    kind("/metrics with a tenant's admin key", as_admin("GET", "/metrics"), 403),
    kind("prune job with a tenant's admin key", as_admin("POST", "/v1/jobs", {"kind": "prune"}),
         403),
]


@pytest.mark.parametrize("case", KINDS, ids=[k.name for k in KINDS])
def test_hostile_input(case: Kind, live: Live) -> None:
    before = _snapshot(live.settings)
    with httpx.Client(base_url=live.url, timeout=30) as http:
        try:
            status = case.send(live, http)
        except httpx.RemoteProtocolError:
            status = 0  # the server closed the connection without an answer
    print(f"\nhostile: {case.name} -> {status}")
    assert status in case.expect, f"{case.name}: got {status}, defined {sorted(case.expect)}"
    after = _snapshot(live.settings)
    if case.stores:
        assert after[0] == before[0] + 1
    else:
        assert after == before, f"{case.name} changed the store"
    with httpx.Client(base_url=live.url, timeout=30) as http:  # and the service still serves
        ok = http.post("/v1/memories/search", headers=live.auth,
                       json={"user_id": USER, "query": "vault code", "mode": "keyword"})
        assert ok.status_code == 200 and ok.json()["results"][0]["text"].startswith("the vault")


def test_stored_hostile_text_comes_back_normalised(live: Live) -> None:
    texts = ["before\u0000after", "\u202eevil\u200b\u200dtext\u2066", "e" + "\u0301" * 7_000]
    # stored as the ingest normalises every text: NFC, control characters stripped
    with httpx.Client(base_url=live.url, timeout=30) as http:
        for text in texts:
            made = http.post("/v1/memories", headers=live.auth,
                             json={"user_id": "exact", "text": text})
            assert made.status_code == 201
            got = http.get(f"/v1/memories/{made.json()['id']}", headers=live.auth,
                           params={"user_id": "exact"})
            assert got.json()["text"] == normalise_text(text)


def test_slowloris_connections_do_not_starve_others(live: Live) -> None:
    """Clients dribbling their headers a byte at a time hold a socket each, nothing more."""
    socks = []
    try:
        for _ in range(SLOW_CONNECTIONS):
            sock = socket.create_connection(("127.0.0.1", live.port), timeout=5)
            sock.sendall(b"POST /v1/memories HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            socks.append(sock)
        for sock in socks:  # one more byte each: still incomplete
            sock.sendall(b"X")
        with httpx.Client(base_url=live.url, timeout=10) as http:
            for _ in range(5):
                assert http.get("/healthz").status_code == 200
                found = http.post("/v1/memories/search", headers=live.auth,
                                  json={"user_id": USER, "query": "vault"})
                assert found.status_code == 200
    finally:
        for sock in socks:
            sock.close()


def test_thousands_of_idle_connections_do_not_starve_others(live: Live) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 2 * IDLE_CONNECTIONS + 1024  # both ends live in this process, plus the rest
    if soft < needed:  # room for both ends of every connection (the server runs in-process)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    socks: list[socket.socket] = []
    errors: list[BaseException] = []

    def open_many() -> None:
        try:
            for _ in range(IDLE_CONNECTIONS):
                socks.append(socket.create_connection(("127.0.0.1", live.port), timeout=10))
        except OSError as exc:
            errors.append(exc)

    opener = threading.Thread(target=open_many)
    opener.start()
    opener.join(120)
    try:
        assert not errors and len(socks) == IDLE_CONNECTIONS, errors
        started = time.monotonic()
        with httpx.Client(base_url=live.url, timeout=30) as http:
            assert http.get("/healthz").status_code == 200
            found = http.post("/v1/memories/search", headers=live.auth,
                              json={"user_id": USER, "query": "vault"})
            assert found.status_code == 200, found.text
        assert time.monotonic() - started < 30
    finally:
        for sock in socks:
            sock.close()


def test_docs_list_every_kind() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    table = doc[doc.index("### Hostile input"):]
    missing = [k.name for k in KINDS if f"| {k.name} |" not in table]
    assert not missing, f"docs/operations.md hostile-input table lacks: {missing}"
    assert len(KINDS) + 2 >= 40

