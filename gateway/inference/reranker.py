"""Async gRPC client for the optional ``reranker`` model: (query, passage) pairs in, logits out.

It shares the embedder's gRPC channel and calls Triton through the same ``infer`` (deadlines,
metrics, ``map_triton_errors``), so an outage or a full queue is the same 503 here as there.
The model is optional: ``available()`` says whether Triton serves one, and scoring without one
is a ``Conflict`` (409) that names the fix, never a silent fallback to vector order. Versions
are not pinned: scores are never stored, so whichever version Triton serves is the right one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import numpy as np
import tritonclient.grpc.aio as grpcclient

from gateway.errors import Conflict, GatewayError, InferenceUnavailable
from gateway.inference.client import infer, map_triton_errors, string_input
from gateway.metrics import Metrics

NOT_LOADED = (
    "rerank was requested but no reranker model is loaded in Triton; export one with "
    "`make export RERANKER=<cross-encoder folder or hub id>` (or search with rerank=false)"
)
_PROBE_S = 2.0  # model status calls: quick answers, or Triton is not there


class RerankerClient:
    """Scores (query, passage) pairs with the Triton ``reranker`` model (raw logits)."""

    def __init__(
        self,
        client: grpcclient.InferenceServerClient,
        model: str,
        *,
        timeout_s: float,
        retry_after_s: int,
        metrics: Metrics,
        recheck_s: float = 5.0,
    ) -> None:
        self._client = client  # owned by the embedder client, which closes it
        self._model = model
        self._timeout_s = timeout_s
        self._retry_after = retry_after_s
        self._metrics = metrics
        self._recheck_s = recheck_s
        self._checked = -recheck_s
        self.version: str | None = None  # newest loaded version when last asked; None: none

    @property
    def label(self) -> str | None:
        return None if self.version is None else f"{self._model}:{self.version}"

    async def refresh(self) -> str | None:
        """Ask Triton whether the model is served; remember and return its newest version.

        Raises ``InferenceUnavailable`` when Triton itself cannot be reached.
        """
        self._checked = time.monotonic()
        with map_triton_errors(self._retry_after):
            if not await self._client.is_model_ready(self._model, client_timeout=_PROBE_S):
                self.version = None
                return None
            metadata = await self._client.get_model_metadata(self._model, client_timeout=_PROBE_S)
        self.version = max(metadata.versions, key=int) if metadata.versions else None
        return self.version

    async def available(self) -> bool:
        """Whether a reranker is served, for optional use: never raises, and while none is
        known asks Triton at most every ``recheck_s`` (a default must not cost every search
        an extra round trip)."""
        if self.version is None and time.monotonic() - self._checked >= self._recheck_s:
            with contextlib.suppress(GatewayError):
                await self.refresh()
        return self.version is not None

    async def require(self) -> None:
        """Raise ``Conflict`` unless a reranker is served (asks Triton when none is known)."""
        if self.version is None and await self.refresh() is None:
            raise Conflict(NOT_LOADED)

    async def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """float32 ``[len(passages)]`` logits of (query, passage), higher is more relevant.

        All pairs go in one Triton request (the query repeated per row), so a search costs one
        reranker execution however large its candidate pool.
        """
        await self.require()
        inputs = [string_input("QUERY", [query] * len(passages)),
                  string_input("PASSAGE", passages)]
        try:
            scores = await infer(
                self._client, self._model, inputs, "SCORE", rows=len(passages), version="",
                timeout_s=self._timeout_s, retry_after=self._retry_after, metrics=self._metrics,
            )
        except InferenceUnavailable:
            if await self._unloaded():
                raise Conflict(NOT_LOADED) from None
            raise
        return np.ascontiguousarray(scores.reshape(-1), dtype=np.float32)

    async def _unloaded(self) -> bool:
        """After a failed call: True when Triton is up but no longer serves the reranker."""
        try:
            return await self.refresh() is None
        except GatewayError:
            return False  # Triton itself is away: the 503 stands
