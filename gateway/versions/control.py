"""Triton model control over gRPC: which versions of a model are served, and changing that.

The server runs with ``--model-control-mode=explicit``. Serving two versions side by side (the
active one and a migration target) is a load with the model's own config and a ``specific``
version policy; unloading the old one afterwards is the same call with one version.
"""

from __future__ import annotations

import json
from pathlib import Path

import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from gateway.errors import InferenceUnavailable, InvalidInput
from gateway.inference.client import map_triton_errors
from gateway.inference.remote_spec import remote_versions_on_disk


def repository_versions(repository: Path, model: str) -> list[str]:
    """Version folders on disk for ``model`` (what Triton can load), oldest first."""
    folder = repository / model
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.iterdir() if p.is_dir() and p.name.isdigit()), key=int)


def declared_versions(repository: Path, model: str) -> list[str]:
    """Every version of ``model`` on disk, oldest first: the folders Triton loads and the
    remote declarations (``<N>.remote.toml``, ``gateway.inference.remote_spec``)."""
    return sorted(set(repository_versions(repository, model))
                  | set(remote_versions_on_disk(repository, model)), key=int)


class ModelControl:
    def __init__(self, client: grpcclient.InferenceServerClient, *, retry_after_s: int,
                 timeout_s: float = 300) -> None:
        self._client = client
        self._retry_after = retry_after_s
        self._timeout_s = timeout_s

    async def served_versions(self, model: str) -> list[str]:
        """Versions of ``model`` that are loaded and READY, oldest first."""
        with map_triton_errors(self._retry_after):
            index = await self._client.get_model_repository_index(as_json=True)
        return sorted(
            (entry["version"] for entry in index.get("models", [])
             if entry.get("name") == model and entry.get("state") == "READY"),
            key=int,
        )

    async def serve(self, model: str, versions: list[str]) -> None:
        """Load exactly ``versions`` of ``model`` (others are unloaded); waits until ready."""
        with map_triton_errors(self._retry_after):
            current = await self._client.get_model_config(model, as_json=True)
        config = current["config"]
        config["version_policy"] = {"specific": {"versions": [int(v) for v in versions]}}
        try:
            await self._client.load_model(
                model, config=json.dumps(config), client_timeout=self._timeout_s
            )
        except InferenceServerException as exc:
            if "DEADLINE_EXCEEDED" in str(exc.status() or "") or "UNAVAILABLE" in str(
                exc.status() or ""
            ):
                raise InferenceUnavailable(f"Triton could not load {model} {versions}",
                                           retry_after=self._retry_after) from exc
            raise InvalidInput(f"Triton refused to load {model} versions {versions}: "
                               f"{exc.message()}") from exc
        missing = set(versions) - set(await self.served_versions(model))
        if missing:
            raise InferenceUnavailable(f"{model} versions {sorted(missing)} did not become ready",
                                       retry_after=self._retry_after)
