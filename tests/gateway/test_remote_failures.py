"""How a remote embedding version answers a server that pushes back: against a local
OpenAI-compatible stand-in that answers from a script (429 with Retry-After, 401, 500, vectors
of the wrong size, base64 vectors honoured, ignored or refused), since a real server cannot be
made to do that on cue."""

from __future__ import annotations

import base64
import json
import threading
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from support import run
from support.infinity import declare_remote

from gateway.errors import InferenceUnavailable, InvalidInput, Overloaded
from gateway.inference.client import EmbedderClient
from gateway.inference.remote_versions import RemoteVersions
from gateway.metrics import Metrics

DIM = 8


class Scripted(ThreadingHTTPServer):
    """Each POST takes the next (status, dimension) step; an empty script answers 200.

    ``encoding``: what it does with ``encoding_format: "base64"``: ``ignore`` it (floats, as
    servers predating it do), ``honour`` it, or ``refuse`` it (422, as strict schemas do). A
    dimension of -1 answers a base64 string that is not whole float32 values."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.steps: deque[tuple[int, int]] = deque()
        self.posts = 0
        self.bodies: list[dict[str, object]] = []
        self.encoding = "ignore"
        self.padding = 0  # bytes of filler added to each 200 answer
        self.length_header = True  # False: no Content-Length, the body ends at the close
        self.lock = threading.Lock()

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up on an answer it refuses (too large) is no failure here."""


def vector(text: str, dim: int) -> list[float]:
    """What the stand-in answers for ``text``: distinct per text, not yet normalised."""
    return [float(len(text) + 1 + i % 3) for i in range(dim)]


class _Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.posts += 1
            self.server.bodies.append(body)
            status, dim = self.server.steps.popleft() if self.server.steps else (200, DIM)
        asked = body.get("encoding_format")
        if status == 200 and asked is not None and self.server.encoding == "refuse":
            status = 422
        if status != 200:
            payload = b'{"error": "scripted"}'
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
        else:
            as_base64 = asked == "base64" and self.server.encoding == "honour"
            rows = [{"index": i, "embedding": _encoded(vector(t, dim), dim, as_base64)}
                    for i, t in enumerate(body["input"])]
            answer: dict[str, object] = {"data": rows[::-1]}  # out of order on purpose
            if self.server.padding:
                answer["filler"] = "x" * self.server.padding
            payload = json.dumps(answer).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if self.server.length_header:
            self.send_header("Content-Length", str(len(payload)))
        else:
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def _encoded(values: list[float], dim: int, as_base64: bool) -> list[float] | str:
    if not as_base64:
        return values
    if dim < 0:
        return base64.b64encode(b"\0" * 6).decode()  # 1.5 float32 values
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(tmp_path: Path, server: Scripted, metrics: Metrics, **fields: float | int | str
            ) -> EmbedderClient:
    (tmp_path / "embedder").mkdir(exist_ok=True)
    declare_remote(tmp_path, "2", f"http://127.0.0.1:{server.server_address[1]}", dim=DIM,
                   model="m", backoff_s=0.01, **fields)
    return EmbedderClient("127.0.0.1:1", "embedder", timeout_s=10, retry_after_s=1,
                          metrics=metrics,
                          remotes=RemoteVersions(tmp_path, "embedder", metrics=metrics))


def test_a_saturated_server_is_retried_then_answers(tmp_path: Path, scripted: Scripted) -> None:
    metrics = Metrics()
    scripted.steps.extend([(429, DIM), (503, DIM)])

    async def scenario() -> np.ndarray:
        client = _client(tmp_path, scripted, metrics)
        try:
            return await client.embed(["a", "bbb"], version="2")
        finally:
            await client.close()

    vectors = run(scenario())
    assert scripted.posts == 3
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)  # normalised
    assert metrics.registry.get_sample_value("memory_remote_embed_retries_total",
                                             {"version": "embedder:2"}) == 2


def test_a_server_still_saturated_gives_429_with_retry_after(tmp_path: Path,
                                                            scripted: Scripted) -> None:
    scripted.steps.extend([(429, DIM)] * 3)

    async def scenario() -> None:
        client = _client(tmp_path, scripted, Metrics(), retries=2, breaker_failures=1,
                         retry_after_s=7)
        try:
            with pytest.raises(Overloaded) as refused:
                await client.embed(["a"], version="2")
            assert refused.value.retry_after == 7
            assert "saturated" in str(refused.value.detail)
            assert client.remotes is not None  # back-pressure is no fault: still closed
            assert client.remotes.known()["2"].breaker.state == "closed"
        finally:
            await client.close()

    run(scenario())
    assert scripted.posts == 3


def test_a_refusal_is_not_retried_and_failures_open_the_breaker(tmp_path: Path,
                                                                scripted: Scripted) -> None:
    scripted.steps.extend([(401, DIM), (500, DIM), (500, DIM)])

    async def scenario() -> None:
        client = _client(tmp_path, scripted, Metrics(), retries=1, breaker_failures=2,
                         breaker_reset_s=3600)
        try:
            with pytest.raises(InferenceUnavailable, match="HTTP 401"):
                await client.embed(["a"], version="2")
            assert scripted.posts == 1
            with pytest.raises(InferenceUnavailable, match="HTTP 500"):
                await client.embed(["a"], version="2")
            assert scripted.posts == 3
            with pytest.raises(InferenceUnavailable, match="circuit breaker open") as paused:
                await client.embed(["a"], version="2")
            assert scripted.posts == 3  # the open breaker sent nothing
            assert paused.value.retry_after is not None and paused.value.retry_after > 3000
            assert not await client.ready("2")
        finally:
            await client.close()

    run(scenario())


def test_registration_refuses_another_dimension(tmp_path: Path, scripted: Scripted) -> None:
    scripted.steps.append((200, DIM * 2))

    async def scenario() -> None:
        client = _client(tmp_path, scripted, Metrics())
        try:
            with pytest.raises(InvalidInput, match="declared 8-dimensional"):
                await client.probe("2")
        finally:
            await client.close()

    run(scenario())
    assert scripted.posts == 1  # a wrong model is not retried


def _normalised(texts: list[str]) -> np.ndarray:
    rows = np.asarray([vector(t, DIM) for t in texts], dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _embed_twice(tmp_path: Path, scripted: Scripted, **fields: float | int | str
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Two calls through one client; both answers and what the admin API shows after."""
    async def scenario() -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
        client = _client(tmp_path, scripted, Metrics(), **fields)
        try:
            first = await client.embed(["a", "bbb"], version="2")
            second = await client.embed(["cc"], version="2")
            assert client.remotes is not None
            return first, second, client.remotes.known()["2"].describe()
        finally:
            await client.close()

    return run(scenario())


def test_vectors_travel_as_base64_when_the_server_speaks_it(tmp_path: Path,
                                                            scripted: Scripted) -> None:
    scripted.encoding = "honour"
    first, second, shown = _embed_twice(tmp_path, scripted)
    assert np.allclose(first, _normalised(["a", "bbb"])) and first.dtype == np.float32
    assert np.allclose(second, _normalised(["cc"]))
    assert [b.get("encoding_format") for b in scripted.bodies] == ["base64", "base64"]
    assert shown["encoding_format"] == "base64"


def test_a_server_that_ignores_base64_is_read_as_floats(tmp_path: Path,
                                                        scripted: Scripted) -> None:
    first, _, shown = _embed_twice(tmp_path, scripted)  # the stand-in's default: ignore
    assert np.allclose(first, _normalised(["a", "bbb"]))
    assert scripted.posts == 2 and shown["encoding_format"] == "base64"


def test_a_server_that_refuses_base64_is_asked_for_floats_from_then_on(
        tmp_path: Path, scripted: Scripted) -> None:
    scripted.encoding = "refuse"
    metrics = Metrics()

    async def scenario() -> np.ndarray:
        client = _client(tmp_path, scripted, metrics, breaker_failures=1)
        try:
            vectors = await client.embed(["a", "bbb"], version="2")
            await client.embed(["cc"], version="2")
            assert client.remotes is not None
            remote = client.remotes.known()["2"]
            assert remote.breaker.state == "closed"  # a refused format is no failure
            assert remote.describe()["encoding_format"] == "float"
            return vectors
        finally:
            await client.close()

    assert np.allclose(run(scenario()), _normalised(["a", "bbb"]))
    # Refused once, asked again for floats at once, then floats only.
    assert [b.get("encoding_format") for b in scripted.bodies] == ["base64", None, None]
    assert metrics.registry.get_sample_value("memory_remote_embed_retries_total",
                                             {"version": "embedder:2"}) is None


def test_a_refused_request_is_still_refused_after_the_float_try(tmp_path: Path,
                                                                scripted: Scripted) -> None:
    scripted.encoding = "honour"
    scripted.steps.extend([(400, DIM), (400, DIM)])

    async def scenario() -> None:
        client = _client(tmp_path, scripted, Metrics())
        try:
            with pytest.raises(InferenceUnavailable, match="HTTP 400"):
                await client.embed(["a"], version="2")
            assert client.remotes is not None  # the request was at fault, not base64
            assert client.remotes.known()["2"].describe()["encoding_format"] == "base64"
        finally:
            await client.close()

    run(scenario())
    assert [b.get("encoding_format") for b in scripted.bodies] == ["base64", None]


def test_a_declaration_may_ask_for_floats_only(tmp_path: Path, scripted: Scripted) -> None:
    scripted.encoding = "honour"
    first, _, shown = _embed_twice(tmp_path, scripted, encoding_format="float")
    assert np.allclose(first, _normalised(["a", "bbb"]))
    assert [b.get("encoding_format") for b in scripted.bodies] == [None, None]
    assert shown["encoding_format"] == "float"


def test_a_garbled_base64_answer_is_retried(tmp_path: Path, scripted: Scripted) -> None:
    scripted.encoding = "honour"
    scripted.steps.append((200, -1))
    first, _, _ = _embed_twice(tmp_path, scripted)
    assert np.allclose(first, _normalised(["a", "bbb"]))
    assert scripted.posts == 3  # the garbled answer, its retry, the second call


@pytest.mark.parametrize("length_header", [True, False], ids=["declared", "streamed"])
def test_an_answer_larger_than_its_vectors_is_not_read_whole(
        tmp_path: Path, scripted: Scripted, length_header: bool) -> None:
    """Two 8-d vectors take a few hundred bytes; 4 MB is a broken server, refused at its
    Content-Length or once the body passes the cap, and retried like one."""
    scripted.padding, scripted.length_header = 4 * 1024 * 1024, length_header

    async def scenario() -> None:
        client = _client(tmp_path, scripted, Metrics(), retries=1)
        try:
            with pytest.raises(InferenceUnavailable) as failed:
                await client.embed(["a", "bbb"], version="2")
            assert "more than its vectors take" in str(failed.value.detail)
            scripted.padding = 1000  # a little filler is fine
            vectors = await client.embed(["a", "bbb"], version="2")
            assert np.allclose(vectors, _normalised(["a", "bbb"]))
        finally:
            await client.close()

    run(scenario())
    assert scripted.posts == 3  # the oversized answer, its retry, the good one
