"""How a remote embedding version answers a server that pushes back: against a local
OpenAI-compatible stand-in that answers from a script (429 with Retry-After, 401, 500, vectors
of the wrong size), since a real server cannot be made to do that on cue."""

from __future__ import annotations

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
    """Each POST takes the next (status, dimension) step; an empty script answers 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.steps: deque[tuple[int, int]] = deque()
        self.posts = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.posts += 1
            status, dim = self.server.steps.popleft() if self.server.steps else (200, DIM)
        if status != 200:
            payload = b'{"error": "scripted"}'
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
        else:
            rows = [{"index": i, "embedding": [float(len(t) + 1)] * dim}
                    for i, t in enumerate(body["input"])]
            payload = json.dumps({"data": rows[::-1]}).encode()  # out of order on purpose
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _client(tmp_path: Path, server: Scripted, metrics: Metrics, **fields: float | int
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
