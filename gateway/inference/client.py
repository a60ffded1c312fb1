"""Async gRPC client for the ``embedder`` model, with deadlines and translated errors.

Versions declared remote (``<N>.remote.toml``, ``gateway.inference.remote_versions``) are
embedded by their OpenAI-compatible server instead; callers never see the difference.

gRPC (not HTTP) because Triton's HTTP endpoint stalls clients while a model loads. Every call
has a client-side timeout and the same Triton-side timeout, so nothing waits forever; Triton
errors become ``InferenceUnavailable`` / ``InferenceTimeout`` here and nowhere else.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from gateway.deadline import inference_timeout
from gateway.errors import InferenceTimeout, InferenceUnavailable, InvalidInput
from gateway.inference.remote import RemoteEmbedder, WrongDimension
from gateway.inference.remote_versions import RemoteVersions
from gateway.metrics import Metrics

# Reconnect quickly after a Triton restart instead of gRPC's default exponential back-off.
_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30_000),
]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    version: str
    dim: int

    @property
    def label(self) -> str:
        """What every stored vector records: ``name:version``."""
        return f"{self.name}:{self.version}"


@contextlib.contextmanager
def map_triton_errors(retry_after: int) -> Iterator[None]:
    """Translate Triton/gRPC failures into the gateway's error tree."""
    try:
        yield
    except InferenceServerException as exc:
        status = str(exc.status() or "")
        if "DEADLINE_EXCEEDED" in status:
            raise InferenceTimeout(
                "inference timed out", retry_after=retry_after
            ) from exc
        raise InferenceUnavailable(
            f"inference service unavailable ({status.removeprefix('StatusCode.') or 'error'})",
            retry_after=retry_after,
        ) from exc


def string_input(name: str, values: Sequence[str]) -> InferInput:
    """A BYTES tensor of UTF-8 strings, one per batch row (``[len(values), 1]``)."""
    batch = np.array([[v.encode("utf-8")] for v in values], dtype=np.object_)
    tensor = InferInput(name, list(batch.shape), "BYTES")
    tensor.set_data_from_numpy(batch)
    return tensor


async def infer(
    client: grpcclient.InferenceServerClient,
    model: str,
    inputs: list[InferInput],
    output: str,
    *,
    rows: int,
    version: str,
    timeout_s: float,
    retry_after: int,
    metrics: Metrics,
) -> np.ndarray:
    """One Triton request with deadlines on both sides, metrics and translated errors.

    Every model client calls Triton through here, so timeouts, the request deadline and the
    error mapping are the same for the embedder and the reranker.
    """
    # The request's deadline caps the timeout; an expired one raises before Triton is asked.
    timeout_s = inference_timeout(timeout_s)
    metrics.triton_batch_texts.labels(model).observe(rows)
    started = time.perf_counter()
    outcome = "error"
    try:
        with map_triton_errors(retry_after):
            result = await client.infer(
                model,
                inputs,
                model_version=version,
                outputs=[InferRequestedOutput(output)],
                timeout=max(1, int(timeout_s * 1_000_000)),  # Triton-side, microseconds
                client_timeout=timeout_s,
            )
        outcome = "ok"
    finally:
        metrics.triton_latency.labels(model, outcome).observe(time.perf_counter() - started)
    values = result.as_numpy(output)
    if values is None or values.shape[0] != rows:
        raise InferenceUnavailable(f"{model} returned a malformed response")
    return values


class EmbedderClient:
    """Embeds texts with the Triton ``embedder`` model (raw strings in, unit vectors out).

    Stateless about versions: every call names the version it wants. Which version is active
    is ``gateway.versions.active.ActiveModels``' business.
    """

    def __init__(
        self, url: str, model: str, *, timeout_s: float, retry_after_s: int, metrics: Metrics,
        remotes: RemoteVersions | None = None,
    ) -> None:
        self._client = grpcclient.InferenceServerClient(url, channel_args=_CHANNEL_ARGS)
        self.model = model
        self._timeout_s = timeout_s
        self._retry_after = retry_after_s
        self._metrics = metrics
        self.remotes = remotes  # versions served by an OpenAI-compatible server

    async def remote(self, version: str) -> RemoteEmbedder | None:
        """``version``'s remote client when it is declared remote, else None (Triton)."""
        return None if self.remotes is None else await self.remotes.lookup(version)

    @property
    def grpc(self) -> grpcclient.InferenceServerClient:
        """The underlying channel, shared with model control (``gateway.versions.control``)."""
        return self._client

    async def close(self) -> None:
        await self._client.close()
        if self.remotes is not None:
            await self.remotes.close()

    async def ready(self, version: str | None) -> bool:
        """Triton is up and serves ``version`` (any version when None); False, never raises.

        A read: it never asks Triton to load anything. A remote version is ready while its
        circuit breaker is not open.
        """
        if version and self.remotes is not None and (
                remote := self.remotes.known().get(version)) is not None:
            return remote.ready()
        try:
            return bool(
                await self._client.is_server_ready(client_timeout=2)
                and await self._client.is_model_ready(self.model, version or "",
                                                      client_timeout=2)
            )
        except InferenceServerException:
            return False

    async def embed(self, texts: list[str], version: str, *, model: str | None = None
                    ) -> np.ndarray:
        """float32 ``[len(texts), dim]``, L2-normalised, in one Triton request.

        ``model`` names another model serving the same versions (the query twin); a remote
        version ignores it.
        """
        remote = await self.remote(version)
        if remote is not None:
            return await remote.embed(texts)
        return await self._infer(texts, version, model or self.model)

    async def probe(self, version: str, *, model: str | None = None) -> ModelInfo:
        """Describe one served version (its dimension comes from embedding a probe text).

        For a remote version this is its registration check: the server must answer, with
        vectors of the declared dimension (``InvalidInput`` when not).
        """
        remote = await self.remote(version)
        if remote is not None:
            return await probe_remote(remote, self.model, version)
        vector = await self._infer(["dimension probe"], version, model or self.model)
        return ModelInfo(self.model, version, int(vector.shape[1]))

    async def _infer(self, texts: list[str], version: str, model: str) -> np.ndarray:
        embeddings = await infer(
            self._client, model, [string_input("TEXT", texts)], "EMBEDDING",
            rows=len(texts), version=version, timeout_s=self._timeout_s,
            retry_after=self._retry_after, metrics=self._metrics,
        )
        return np.ascontiguousarray(embeddings, dtype=np.float32)


async def probe_remote(remote: RemoteEmbedder, model: str, version: str) -> ModelInfo:
    """Embed a probe text remotely; refuse a server that answers another dimension."""
    spec = remote.spec
    try:
        [vector] = await remote.embed(["dimension probe"])
    except WrongDimension as exc:
        raise InvalidInput(f"{model}:{version} refused: {spec.base_url} model {spec.model!r} "
                           f"does not give the declared {spec.dim}-dimensional vectors "
                           f"({exc.detail})") from exc
    except InferenceUnavailable as exc:
        raise InferenceUnavailable(f"{model}:{version} cannot be registered: {exc.detail}",
                                   retry_after=exc.retry_after) from exc
    return ModelInfo(model, version, int(vector.shape[0]))
