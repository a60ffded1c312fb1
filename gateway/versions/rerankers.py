"""Reranker version swaps: load the new version, switch, unload; no migration.

Reranker scores are never stored, so nothing needs re-computing: one Triton load with a
``specific`` version policy brings the new version up and unloads the old one once it is
ready (in-flight requests finish on the old one). The store remembers the choice, so a
restarted gateway serves the same version even when a newer one sits in the repository.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from gateway.errors import Conflict, NotFound
from gateway.inference.reranker import RerankerClient
from gateway.store.base import VersionTable
from gateway.versions.control import ModelControl, repository_versions

log = logging.getLogger("gateway.migration")


class RerankerVersions:
    def __init__(self, reranker: RerankerClient, versions: VersionTable, control: ModelControl,
                 *, model: str, repository: Path) -> None:
        self.reranker, self.versions, self.control = reranker, versions, control
        self.model, self.repository = model, repository

    async def connect(self) -> None:
        """Serve the remembered version if Triton loaded another one (e.g. a newer export)."""
        state = await self.versions.model_state(self.model)
        served = await self.control.served_versions(self.model)
        if state is None:
            if served:
                await self.versions.set_active_version(self.model, served[-1])
            return
        if served != [state.active] and state.active in repository_versions(
                self.repository, self.model):
            await self.control.serve(self.model, [state.active])
            await self.reranker.refresh()

    async def view(self) -> dict[str, Any]:
        """What the admin API shows: versions on disk, served, and the active one."""
        state = await self.versions.model_state(self.model)
        return {
            "active": state.active if state else None,
            "served": await self.control.served_versions(self.model),
            "repository": repository_versions(self.repository, self.model),
        }

    async def activate(self, version: str) -> str:
        if version not in repository_versions(self.repository, self.model):
            raise NotFound(f"{self.model} version {version} is not in the model repository")
        served = await self.control.served_versions(self.model)
        if served == [version]:
            raise Conflict(f"{self.model}:{version} is already active")
        await self.control.serve(self.model, [version])
        await self.versions.set_active_version(self.model, version)
        await self.reranker.refresh()
        log.info("reranker switched to version %s (was %s)", version, served)
        return version
