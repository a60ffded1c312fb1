"""CLIP version swaps: re-embed every stored picture in the background, then switch at once.

The embedder's machinery (``gateway.versions.activation``) for the image space. The store
keeps the active CLIP version (``model_state`` row ``clip``): on a fresh store the newest
version both towers serve becomes active; after that the gateway serves the recorded one,
even when a newer export sits in the repository. ``activate(N)`` loads N next to the active
version in both towers, records the target and starts a job that embeds every stored picture
with N's image tower, in id order and in batches at background ingest priority, into target
vectors beside the active ones. Searches and adds keep using the active version meanwhile
(pictures added meanwhile are picked up past the cursor). When every picture has its N vector,
one store transaction moves them in and makes N active; the client is pinned to N under the
image-write lock, and Triton unloads the old version. The cursor is in the store, so a
restarted gateway resumes the job; ``abandon()`` rolls it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from gateway.admission.controller import AdmissionController
from gateway.errors import Conflict, GatewayError, NotFound, Overloaded
from gateway.inference.clip import NOT_LOADED, ClipClient, space_label
from gateway.memory.clock import utc_now
from gateway.store.base import ImageVersionTable, VersionTable
from gateway.versions.control import ModelControl, repository_versions
from gateway.versions.reembed_job import MigrationStatus, ReembedJob

log = logging.getLogger("gateway.migration")

MODEL = "clip"  # the ``model_state`` row, and the prefix of every image vector's label


class ClipStore(VersionTable, ImageVersionTable, Protocol):
    """The part of the store CLIP versions use."""


class ClipVersions(ReembedJob):
    def __init__(self, clip: ClipClient, store: ClipStore, control: ModelControl, *,
                 repository: Path, batch_size: int = 32, retry_s: float = 2.0,
                 admission: AdmissionController | None = None) -> None:
        self.clip, self.store, self.control = clip, store, control
        self.repository, self.batch_size, self.retry_s = repository, batch_size, retry_s
        super().__init__(admission)
        self.model = MODEL
        self._lock = asyncio.Lock()  # one resolve, activation or follow at a time
        clip.resolve = self._resolve

    # -- which version serves -------------------------------------------------------------------
    def repository_versions(self) -> list[str]:
        """Versions on disk for both towers, oldest first."""
        image = repository_versions(self.repository, self.clip.image_model)
        return [v for v in repository_versions(self.repository, self.clip.text_model)
                if v in image]

    async def _serve(self, versions: list[str]) -> None:
        """Both towers serve exactly ``versions``."""
        for tower in (self.clip.image_model, self.clip.text_model):
            if await self.control.served_versions(tower) != versions:
                await self.control.serve(tower, versions)

    async def _resolve(self, served: list[str]) -> str | None:
        """The client's choice of version (``ClipClient.refresh``): the store's active one,
        loaded if Triton serves another (a newer export at start-up); on a fresh store the
        newest served. Resumes a migration the store records."""
        if not served:
            return None
        async with self._lock:
            state = await self.store.model_state(self.model)
            if state is None:
                await self.store.set_active_version(self.model, served[-1])
                state = await self.store.model_state(self.model)
                assert state is not None
            wanted = sorted({state.active, *([state.target] if state.target else [])}, key=int)
            if not set(wanted) <= set(served):
                missing = set(wanted) - set(self.repository_versions())
                if missing:
                    log.error("CLIP versions %s are recorded in the store but not in the "
                              "repository", sorted(missing, key=int))
                    return None
                await self._serve(wanted)
            self.status.active = state.active
            if state.target is not None and self._task is None:
                self._start(state.target, state.started_at)
                log.info("resuming the CLIP migration to %s", state.target)
            return state.active

    async def connect(self) -> None:
        """At start-up, when CLIP is exported: pin the active version (and resume)."""
        if self.repository_versions():
            with contextlib.suppress(GatewayError):
                await self.clip.refresh()

    async def follow(self) -> None:
        """Another replica changed a model state (the change feed said so): pin its CLIP
        choice. The replica running the job has nothing to follow."""
        if self._task is not None and not self._task.done():
            return
        state = await self.store.model_state(self.model)
        if state is None or self.clip.version is None or state.active == self.clip.version:
            return
        with contextlib.suppress(GatewayError):  # an embed failure asks again (``refresh``)
            await self._serve([state.active])
        async with self.clip.switching:
            self.clip.pin(state.active)
        self.status = MigrationStatus(state="done", active=state.active, finished_at=utc_now())
        log.info("CLIP switched to version %s (switched by another replica)", state.active)

    # -- operator actions ---------------------------------------------------------------------
    async def view(self) -> dict[str, Any]:
        """What the admin API shows: versions on disk, served, active, and the migration."""
        state = await self.store.model_state(self.model)
        served: list[str] = []
        if self.repository_versions():
            with contextlib.suppress(GatewayError):
                served = await self.clip.served()
        if self.status.state in ("running", "stalled", "switching"):
            self.status.done, self.status.total = await self.store.image_migration_progress()
        return {
            "active": state.active if state else None,
            "target": state.target if state else None,
            "served": served,
            "repository": self.repository_versions(),
            "migration": asdict(self.status),
        }

    async def activate(self, version: str) -> MigrationStatus:
        """Start re-embedding every picture with ``version``; returns at once (poll)."""
        if not self.repository_versions():
            raise Conflict(NOT_LOADED)
        if self._task is not None and not self._task.done():
            raise Conflict(f"a migration to {self.model}:{self.status.target} is running")
        if version not in self.repository_versions():
            raise NotFound(f"{self.model} version {version} is not in the model repository "
                           f"(both {self.clip.image_model} and {self.clip.text_model})")
        active = await self.clip.require()
        if version == active:
            raise Conflict(f"{self.model}:{version} is already active")
        async with self._lock:
            state = await self.store.model_state(self.model)
            if state is not None and state.target is not None:
                raise Conflict(f"a migration to {self.model}:{state.target} is running "
                               "(begun by another replica)")
            await self._serve(sorted([active, version], key=int))
            started = utc_now()
            if not await self.store.begin_image_migration(self.model, version, started):
                raise Conflict(f"a migration of {self.model} was begun by another replica")
            self._start(version, started)
        return self.status

    async def abandon(self) -> MigrationStatus:
        """Roll a running or stalled migration back; the active version stays."""
        state = await self.store.model_state(self.model)
        if state is None or state.target is None:
            raise Conflict(f"no {self.model} migration to abandon")
        await self.close()
        self._task = None
        state = await self.store.model_state(self.model)
        if state is not None and state.target is None:  # the switch won the race
            async with self.clip.switching:
                self.clip.pin(state.active)
            self.status.state, self.status.active = "done", state.active
            raise Conflict(f"the migration to {self.model}:{state.active} finished before it "
                           "could be abandoned")
        assert state is not None
        await self.store.abandon_image_migration(self.model)
        with contextlib.suppress(GatewayError):  # the target lingers in Triton: harmless
            await self._serve([state.active])
        self.status.state, self.status.target = "idle", None
        return self.status

    # -- the job ------------------------------------------------------------------------------
    def _start(self, version: str, started_at: str | None) -> None:
        self._launch(self._run(version), name=f"clip-migrate-{version}", target=version,
                     started_at=started_at)

    async def _run(self, version: str) -> None:
        label = space_label(version)
        began, embedded = time.monotonic(), 0
        while True:
            try:
                state = await self.store.model_state(self.model)
                if state is None or state.target != version:  # abandoned by another replica
                    self.status.state, self.status.target = "idle", None
                    return
                self.status.done, self.status.total = await self.store.image_migration_progress()
                batch = await self.store.image_migration_pending(state.cursor, self.batch_size)
                if not batch:
                    if await self._switch(version, label):
                        return
                    continue  # pictures arrived meanwhile: go round again
                async with self._ingest_slot():
                    _, vectors = await self.clip.embed_images([p.data for p in batch], version)
                await self.store.put_image_shadow_batch(self.model, label,
                                                        [p.id for p in batch], vectors)
                embedded += len(batch)
                self.status.rate_per_s = round(embedded / (time.monotonic() - began), 1)
                self.status.state, self.status.error = "running", None
            except asyncio.CancelledError:
                raise
            except Overloaded:  # user traffic holds the ingest slots: yield to it, then resume
                await asyncio.sleep(self.retry_s / 4)
            except GatewayError as exc:  # Triton away or overloaded: keep the cursor, retry
                self.status.state, self.status.error = "stalled", str(exc.detail)
                log.warning("CLIP migration to %s stalled: %s; retrying", label, exc.detail)
                await asyncio.sleep(self.retry_s)

    async def _switch(self, version: str, label: str) -> bool:
        self.status.state = "switching"
        async with self.clip.switching:  # no picture of the old version commits after this
            if not await self.store.switch_image_version(self.model, version, label):
                return False
            self.clip.pin(version)
        log.info("switched %s to version %s", self.model, version)
        try:
            await self._serve([version])
        except GatewayError as exc:  # the old version lingers in Triton; harmless
            log.warning("could not unload the old %s version: %s", self.model, exc.detail)
        _, total = await self.store.image_migration_progress()
        self.status.done = self.status.total = total
        self.status.state, self.status.active = "done", version
        self.status.finished_at = utc_now()
        return True

