"""Async gRPC client for the optional CLIP towers: ``clip_image`` (image bytes in) and
``clip_text`` (texts in), both answering unit rows of one space.

It shares the embedder's channel and calls Triton through the same ``infer`` (deadlines,
metrics, ``map_triton_errors``). One export writes both towers under one version number, so
the space is ``clip:<version>``, and every call pins a version: an image vector and a query
vector never come from different exports. Which version is active is the CLIP version
manager's choice (``gateway.versions.clip``, kept in the store), handed in as ``resolve``;
without one, the newest version both towers serve. Without both towers, image routes answer
``Conflict`` (409) naming the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

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


Resolve = Callable[[list[str]], Awaitable[str | None]]


async def newest(served: list[str]) -> str | None:
    """The default choice: the newest version both towers serve."""
    return served[-1] if served else None


def space_label(version: str) -> str:
    """The space stored with every image vector: ``clip:<version>``."""
    return f"clip:{version}"


class ClipClient:
    """Embeds images and texts into the CLIP space of the active version (or one named)."""

    def __init__(self, client: grpcclient.InferenceServerClient, image_model: str,
                 text_model: str, *, timeout_s: float, retry_after_s: int, metrics: Metrics,
                 recheck_s: float = 5.0) -> None:
        self._client = client  # owned by the embedder client, which closes it
        self.image_model, self.text_model = image_model, text_model
        self._timeout_s, self._retry_after, self._metrics = timeout_s, retry_after_s, metrics
        self._recheck_s = recheck_s
        self._checked = -recheck_s
        self.version: str | None = None
        self.resolve: Resolve = newest
        # Held by an image write from its version check to its commit, and by a CLIP switch:
        # a picture embedded with the old version is never stored after the switch.
        self.switching = asyncio.Lock()

    @property
    def label(self) -> str | None:
        """The active space: ``clip:<version>``."""
        return None if self.version is None else space_label(self.version)

    async def _versions(self, model: str) -> set[str]:
        if not await self._client.is_model_ready(model, client_timeout=_PROBE_S):
            return set()
        metadata = await self._client.get_model_metadata(model, client_timeout=_PROBE_S)
        return set(metadata.versions)

    async def served(self) -> list[str]:
        """The versions both towers serve now, oldest first."""
        with map_triton_errors(self._retry_after):
            common = await self._versions(self.image_model) & await self._versions(
                self.text_model)
        return sorted(common, key=int)

    async def refresh(self) -> str | None:
        """Ask Triton which versions both towers serve and ``resolve`` the active one."""
        self._checked = time.monotonic()
        self.version = await self.resolve(await self.served())
        return self.version

    def pin(self, version: str | None) -> None:
        """The version manager switched (or followed a switch made elsewhere)."""
        self.version = version

    async def available(self) -> bool:
        """Whether CLIP is served, for optional use (text search): never raises; while none
        is known asks Triton at most every ``recheck_s``."""
        if self.version is None and time.monotonic() - self._checked >= self._recheck_s:
            with contextlib.suppress(GatewayError):
                await self.refresh()
        return self.version is not None

    async def require(self) -> str:
        """The active version; ``Conflict`` unless both towers serve one."""
        version = self.version
        if version is None:
            version = await self.refresh()
        if version is None:
            raise Conflict(NOT_LOADED)
        return version

    async def embed_images(self, images: Sequence[bytes], version: str | None = None
                           ) -> tuple[str, np.ndarray]:
        """(space label, ``[len(images), d]`` float32 unit rows) of ``version`` (default:
        the active one)."""
        return await self._embed(self.image_model, bytes_input("IMAGE", images), len(images),
                                 version)

    async def embed_texts(self, texts: Sequence[str], version: str | None = None
                          ) -> tuple[str, np.ndarray]:
        """(space label, ``[len(texts), d]`` float32 unit rows) of ``version``."""
        return await self._embed(self.text_model, string_input("TEXT", texts), len(texts),
                                 version)

    async def _embed(self, model: str, tensor: InferInput, rows: int,
                     version: str | None) -> tuple[str, np.ndarray]:
        pinned = version or await self.require()
        try:
            vectors = await infer(self._client, model, [tensor], "EMBEDDING", rows=rows,
                                  version=pinned, timeout_s=self._timeout_s,
                                  retry_after=self._retry_after, metrics=self._metrics)
        except InferenceUnavailable:
            if version is None and self.version == pinned:
                self.version = None  # unloaded behind our back: ask again next time
            raise
        return space_label(pinned), np.ascontiguousarray(vectors, dtype=np.float32)
