"""Which versions of the embedder are remote, and their clients: one per declared version.

The embedder client asks here before every call (a dict lookup once known): a version with a
``<N>.remote.toml`` goes to its ``RemoteEmbedder``, any other to Triton. Declarations are read
once per version, on a worker thread; a version is immutable once used, like an ONNX version
folder (to change an endpoint, declare a new version and activate it).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.inference.remote import RemoteEmbedder
from gateway.inference.remote_spec import read_remote_spec
from gateway.metrics import Metrics


class RemoteVersions:
    def __init__(self, repository: Path, model: str, *, metrics: Metrics) -> None:
        self.repository, self.model, self._metrics = repository, model, metrics
        self._known: dict[str, RemoteEmbedder | None] = {}  # None: a Triton version

    async def lookup(self, version: str) -> RemoteEmbedder | None:
        """The client of ``version`` when it is remote, else None. ``InvalidInput`` when its
        declaration is malformed (or its key's variable unset)."""
        if version in self._known:
            return self._known[version]
        return await asyncio.to_thread(self._load, version)

    def _load(self, version: str) -> RemoteEmbedder | None:
        spec = read_remote_spec(self.repository, self.model, version)
        if spec is None:
            if (self.repository / self.model / version).is_dir():
                self._known[version] = None  # a Triton version for good
            return None
        remote = RemoteEmbedder(spec, label=f"{self.model}:{version}", metrics=self._metrics)
        return self._known.setdefault(version, remote)

    def known(self) -> dict[str, RemoteEmbedder]:
        """The remote versions loaded so far."""
        return {v: r for v, r in self._known.items() if r is not None}

    async def close(self) -> None:
        for remote in self.known().values():
            await remote.close()
