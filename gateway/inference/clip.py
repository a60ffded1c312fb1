"""Async gRPC client for the optional CLIP towers: ``clip_image`` (image bytes in) and
``clip_text`` (texts in), both answering unit rows of one space.

It shares the embedder's channel and calls Triton through the same ``infer`` (deadlines,
metrics, ``map_triton_errors``). One export writes both towers under one version number, so
the space is ``clip:<version>`` of the newest version both serve, and every call pins that
version: an image vector and a query vector never come from different exports. Without both
towers, image routes answer ``Conflict`` (409) naming the fix.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput

from gateway.errors import Conflict, GatewayError, InferenceUnavailable
from gateway.inference.client import infer, map_triton_errors, string_input
from gateway.metrics import Metrics

NOT_LOADED = (
    "image memories need a CLIP model and none is loaded in Triton; export one with "
    "`python -m export clip --model <CLIP folder or hub id>` and restart the gateway "
    "(docs/images.md)"
)
_PROBE_S = 2.0


def bytes_input(name: str, values: Sequence[bytes]) -> InferInput:
    """A BYTES tensor of raw byte strings, one per batch row (``[len(values), 1]``)."""
    batch = np.array([[v] for v in values], dtype=np.object_)
    tensor = InferInput(name, list(batch.shape), "BYTES")
    tensor.set_data_from_numpy(batch)
    return tensor


class ClipClient:
    """Embeds images and texts into the CLIP space of the newest version both towers serve."""

    def __init__(self, client: grpcclient.InferenceServerClient, image_model: str,
                 text_model: str, *, timeout_s: float, retry_after_s: int, metrics: Metrics,
                 recheck_s: float = 5.0) -> None:
        self._client = client  # owned by the embedder client, which closes it
        self._image, self._text = image_model, text_model
        self._timeout_s, self._retry_after, self._metrics = timeout_s, retry_after_s, metrics
        self._recheck_s = recheck_s
        self._checked = -recheck_s
        self.version: str | None = None

    @property
    def label(self) -> str | None:
        """The space stored with every image vector: ``clip:<version>``."""
        return None if self.version is None else f"clip:{self.version}"

    async def _versions(self, model: str) -> set[str]:
        if not await self._client.is_model_ready(model, client_timeout=_PROBE_S):
            return set()
        metadata = await self._client.get_model_metadata(model, client_timeout=_PROBE_S)
        return set(metadata.versions)

    async def refresh(self) -> str | None:
        """Ask Triton which versions both towers serve; remember the newest common one."""
        self._checked = time.monotonic()
        with map_triton_errors(self._retry_after):
            common = await self._versions(self._image) & await self._versions(self._text)
        self.version = max(common, key=int) if common else None
        return self.version

    async def available(self) -> bool:
        """Whether CLIP is served, for optional use (text search): never raises; while none
        is known asks Triton at most every ``recheck_s``."""
        if self.version is None and time.monotonic() - self._checked >= self._recheck_s:
            with contextlib.suppress(GatewayError):
                await self.refresh()
        return self.version is not None

    async def require(self) -> str:
        """The space label; ``Conflict`` unless both towers are served."""
        if self.version is None and await self.refresh() is None:
            raise Conflict(NOT_LOADED)
        assert self.label is not None
        return self.label

    async def embed_images(self, images: Sequence[bytes]) -> tuple[str, np.ndarray]:
        """(space label, ``[len(images), d]`` float32 unit rows)."""
        return await self._embed(self._image, bytes_input("IMAGE", images), len(images))

    async def embed_texts(self, texts: Sequence[str]) -> tuple[str, np.ndarray]:
        """(space label, ``[len(texts), d]`` float32 unit rows)."""
        return await self._embed(self._text, string_input("TEXT", texts), len(texts))

    async def _embed(self, model: str, tensor: InferInput, rows: int) -> tuple[str, np.ndarray]:
        label = await self.require()
        version = self.version or ""
        try:
            vectors = await infer(self._client, model, [tensor], "EMBEDDING", rows=rows,
                                  version=version, timeout_s=self._timeout_s,
                                  retry_after=self._retry_after, metrics=self._metrics)
        except InferenceUnavailable:
            self.version = None  # a new export may have replaced it: ask again next time
            raise
        return label, np.ascontiguousarray(vectors, dtype=np.float32)
