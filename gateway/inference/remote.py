"""Embeddings from an OpenAI-compatible server (``POST <base_url>/embeddings``) for one version.

Same contract as the Triton client: unit vectors out, every call under the request's deadline,
failures translated here and nowhere else. A call is split into ``batch_size`` requests sent
concurrently over a bounded pool of kept-alive connections. The pool is aiohttp's: a request
leaves in one write (httpx's async client sends headers and body in two, each waking the
server). Vectors are asked for as base64 (OpenAI's ``encoding_format``: little-endian float32,
a quarter of the bytes of JSON numbers, no float parsing on either side); a server that
refuses the field (400/422) is asked for floats from then on, and one that ignores it and
answers floats is read all the same.

A failed attempt (connection refused or reset, timeout, 5xx, 429) is retried with exponential
backoff while the deadline allows; then a 429 from the server becomes our 429 and anything else
our 503, both with ``Retry-After``. Consecutive failures open a circuit breaker
(``gateway.inference.breaker``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from typing import Any

import aiohttp
import numpy as np

from gateway.deadline import inference_timeout
from gateway.errors import InferenceTimeout, InferenceUnavailable, Overloaded
from gateway.inference.breaker import CircuitBreaker
from gateway.inference.remote_spec import RemoteSpec
from gateway.metrics import Metrics

log = logging.getLogger("gateway.remote")

# Answers larger than this are decoded on a worker thread, not on the event loop.
_THREAD_DECODE_BYTES = 64 * 1024
_RETRYABLE = {429, 500, 502, 503, 504}
_ERROR_BYTES = 64 * 1024  # of a refusal's body, read for its first words in the log

# What a server answers when it does not know ``encoding_format`` (or not its base64 value).
_REFUSED_FORMAT = {400, 422}
# Idle connections are closed by us before uvicorn's default 5 s keep-alive (Infinity, vLLM)
# closes them from the server's side, possibly just as a request goes out on one.
_KEEPALIVE_S = 4.0


class WrongDimension(InferenceUnavailable):
    """The server's vectors do not have the version's declared dimension."""


class _Failed(Exception):
    """One failed attempt: ``status`` (None: no HTTP answer), the server's Retry-After."""

    def __init__(self, reason: str, status: int | None = None,
                 retry_after: float | None = None, timeout: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.status, self.retry_after, self.timeout = (
            reason, status, retry_after, timeout)


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _answer_cap(rows: int, dim: int) -> int:
    """The most bytes an honest answer of ``rows`` vectors takes: each value as JSON text
    (at most about 25 characters; base64 takes under 6), an envelope per row, and slack."""
    return rows * (dim * 32 + 256) + 64 * 1024


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> bytes:
    """The body, up to ``cap`` bytes: a refusal's is cut there; a 200 past it is a broken
    server (an unbounded answer would be read whole into memory)."""
    if response.status != 200:
        return await response.content.read(cap)
    if response.content_length is not None and response.content_length > cap:
        raise _Failed(f"answer of {response.content_length} bytes, more than its vectors "
                      f"take ({cap})")
    parts, size = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise _Failed(f"answer past {cap} bytes, more than its vectors take")
        parts.append(chunk)
    return b"".join(parts)


def _row(embedding: object) -> np.ndarray:
    """One ``embedding``: a list of numbers, or base64 of little-endian float32 values."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding, validate=True)  # binascii.Error is a ValueError
        if len(raw) % 4:
            raise ValueError("base64 embedding is not a whole number of float32 values")
        return np.frombuffer(raw, dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def decode(content: bytes, rows: int, dim: int) -> np.ndarray:
    """The ``data[*].embedding`` of an answer (floats or base64), in ``index`` order,
    L2-normalised."""
    try:
        body = json.loads(content)
        items = sorted(body["data"], key=lambda item: item["index"])
        vectors = np.stack([_row(item["embedding"]) for item in items]).astype(
            np.float32, copy=False) if items else np.zeros((0, dim), dtype=np.float32)
    except (ValueError, KeyError, TypeError) as exc:
        raise _Failed(f"malformed answer ({type(exc).__name__})") from exc
    if vectors.ndim == 2 and vectors.shape[0] == rows and vectors.shape[1] != dim:
        # The server answered, with another model's vectors: no retry will help.
        raise _Failed(f"answer has {vectors.shape[1]} dimensions, the version declares {dim}",
                      status=200)
    if vectors.shape != (rows, dim):
        raise _Failed(f"answer has shape {list(vectors.shape)}, expected [{rows}, {dim}]")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise _Failed("answer holds a zero or non-finite vector")
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


class RemoteEmbedder:
    """One remote version's client: its own pool, breaker and retry budget."""

    def __init__(self, spec: RemoteSpec, *, label: str, metrics: Metrics) -> None:
        self.spec, self.label, self._metrics = spec, label, metrics
        self._headers = {"Content-Type": "application/json"}
        key = spec.api_key()
        if key is not None:
            self._headers["Authorization"] = f"Bearer {key}"
        self._session: aiohttp.ClientSession | None = None
        self.breaker = CircuitBreaker(f"remote embedder {label} ({spec.endpoint()})",
                                      failures=spec.breaker_failures, reset_s=spec.breaker_reset_s)
        self._endpoint = spec.endpoint()
        # False once the server refused base64 (or the declaration asks for floats).
        self.base64 = spec.encoding_format == "base64"

    def _client(self) -> aiohttp.ClientSession:
        """The pool, made on first use: aiohttp binds it to the running event loop, and the
        embedder itself is made on a worker thread (``RemoteVersions``)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self.spec.max_connections,
                                               keepalive_timeout=_KEEPALIVE_S),
                timeout=aiohttp.ClientTimeout(total=self.spec.timeout_s))
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def ready(self) -> bool:
        """False while the breaker is open (the server failed repeatedly); never calls out."""
        return self.breaker.state != "open"

    async def embed(self, texts: list[str]) -> np.ndarray:
        """float32 ``[len(texts), dim]``, L2-normalised; ``batch_size`` texts per request."""
        if not texts:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        size = self.spec.batch_size
        if len(texts) <= size:
            return await self._request(texts)
        try:
            async with asyncio.TaskGroup() as group:  # one failure cancels the rest
                parts = [group.create_task(self._request(texts[i:i + size]))
                         for i in range(0, len(texts), size)]
        except ExceptionGroup as failed:  # callers get the first failure, as from one request
            raise failed.exceptions[0] from None
        return np.concatenate([p.result() for p in parts])

    async def _request(self, texts: list[str]) -> np.ndarray:
        budget = inference_timeout(self.spec.timeout_s)  # raises when the deadline passed
        ends = time.monotonic() + budget
        self._metrics.remote_embed_texts.labels(self.label).observe(len(texts))
        attempt = 0
        floats = not self.base64
        while True:
            self.breaker.before_call()
            started = time.perf_counter()
            try:
                vectors = await self._attempt(self._payload(texts, not floats), len(texts), ends)
            except _Failed as failed:
                self._observe(started, "timeout" if failed.timeout else "error")
                if not floats and failed.status in _REFUSED_FORMAT:
                    # It answered; perhaps only base64 was refused: at once, for floats (a
                    # refusal of the request itself comes back again and is reported then).
                    self.breaker.released()
                    floats = True
                    continue
                if failed.status is not None and failed.status not in _RETRYABLE:
                    self.breaker.succeeded()  # it answered: up, but refuses this request
                    raise self._translate(failed) from failed
                if failed.status == 429:
                    self.breaker.released()  # saturated, not broken: back-pressure, no trip
                else:
                    self.breaker.failed()
                delay = self._delay(attempt, failed)
                if attempt >= self.spec.retries or time.monotonic() + delay >= ends:
                    raise self._translate(failed) from failed
                attempt += 1
                self._metrics.remote_embed_retries.labels(self.label).inc()
                log.info("%s: attempt %d failed (%s); retrying in %.2f s", self.label, attempt,
                         failed.reason, delay)
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self.breaker.released()
                raise
            self.breaker.succeeded()
            self._observe(started, "ok")
            if floats and self.base64:
                self.base64 = False
                log.info("%s: the server refused base64 vectors; asking for floats from now on",
                         self.label)
            return vectors

    def _payload(self, texts: list[str], as_base64: bool) -> bytes:
        body: dict[str, Any] = {"model": self.spec.model, "input": texts}
        if as_base64:
            body["encoding_format"] = "base64"
        return json.dumps(body).encode()

    async def _attempt(self, payload: bytes, rows: int, ends: float) -> np.ndarray:
        left = ends - time.monotonic()
        if left <= 0:
            raise _Failed("deadline reached", timeout=True)
        try:
            async with self._client().post(self._endpoint, data=payload,
                                           timeout=aiohttp.ClientTimeout(total=left)
                                           ) as response:
                status, retry_after = response.status, _retry_after(response)
                content = await _read_capped(response, _answer_cap(rows, self.spec.dim)
                                             if status == 200 else _ERROR_BYTES)
        except TimeoutError as exc:  # aiohttp's own timeouts subclass it too
            raise _Failed(f"timed out ({type(exc).__name__})", timeout=True) from exc
        except aiohttp.ClientError as exc:  # refused, reset, closed mid-answer
            raise _Failed(f"{type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise _Failed(f"HTTP {status}: {content[:200].decode(errors='replace')}",
                          status=status, retry_after=retry_after)
        if len(content) > _THREAD_DECODE_BYTES:
            return await asyncio.to_thread(decode, content, rows, self.spec.dim)
        return decode(content, rows, self.spec.dim)

    def _delay(self, attempt: int, failed: _Failed) -> float:
        """Exponential backoff with jitter; a server's Retry-After when it asks for longer."""
        delay = self.spec.backoff_s * (2 ** attempt) * (0.5 + random.random() / 2)  # noqa: S311
        if failed.retry_after is not None:
            delay = max(delay, failed.retry_after)
        return delay

    def _translate(self, failed: _Failed) -> Exception:
        where = f"remote embedder {self.label} ({self.spec.base_url})"
        retry_after = max(self.spec.retry_after_s, int(failed.retry_after or 0))
        if failed.status == 200:
            return WrongDimension(f"{where}: {failed.reason}", retry_after=retry_after)
        if failed.status == 429:
            return Overloaded(f"{where} is saturated: {failed.reason}", retry_after=retry_after,
                              reason="remote_saturated")
        if failed.timeout:
            return InferenceTimeout(f"{where} timed out", retry_after=retry_after)
        if failed.status is not None and failed.status not in _RETRYABLE:
            log.warning("%s refused a request: %s", where, failed.reason)
        return InferenceUnavailable(f"{where} unavailable: {failed.reason}",
                                    retry_after=retry_after)

    def _observe(self, started: float, outcome: str) -> None:
        self._metrics.remote_embed_latency.labels(self.label, outcome).observe(
            time.perf_counter() - started)

    def describe(self) -> dict[str, Any]:
        """What the admin API shows (never the key)."""
        return {"base_url": str(self.spec.base_url), "model": self.spec.model,
                "dim": self.spec.dim, "breaker": self.breaker.state,
                "encoding_format": "base64" if self.base64 else "float"}
