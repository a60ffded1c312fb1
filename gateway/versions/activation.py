"""Embedder version swaps without downtime: re-embed in the background, then switch at once.

``activate(N)`` loads version N next to the active one in Triton, records the target in the
store and starts a job that re-embeds every memory with N, in id order, into shadow vectors
and a shadow index. Reads and writes keep using the active version meanwhile; writes also
store their N vector (see ``gateway.memory.vectors.VectorSource.for_write``). When every
memory has its N vector, one store transaction makes N active, the service adopts the shadow
space in one synchronous step, and Triton unloads the old version. The store keeps the cursor, so a
gateway restarted mid-migration resumes where it stopped (or ``abandon()`` rolls back).

A version may be remote (``<N>.remote.toml``: an OpenAI-compatible server, see
``gateway.inference.remote``): it goes through the same steps, except that Triton is not asked
to load it. Its registration check is the target probe (the server answers, with the declared
dimension). While a remote version is active, Triton keeps the last Triton version it served
(a swap back starts without a load); the next swap to a Triton version replaces it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from gateway.admission.controller import AdmissionController
from gateway.errors import Conflict, GatewayError, InferenceUnavailable, NotFound, Overloaded
from gateway.index.base import VectorIndex
from gateway.index.batcher import SearchBatcher
from gateway.inference.client import EmbedderClient, ModelInfo
from gateway.memory.service import MemoryService, utc_now
from gateway.store.base import VersionTable
from gateway.store.types import ModelState, StaleVersion
from gateway.versions.active import ActiveModels, Space
from gateway.versions.control import ModelControl, declared_versions
from gateway.versions.query_model import query_model_name, sync_query_model
from gateway.versions.reembed_job import MigrationStatus, ReembedJob

log = logging.getLogger("gateway.migration")


class EmbedderVersions(ReembedJob):
    def __init__(
        self,
        service: MemoryService,
        versions: VersionTable,
        control: ModelControl,
        make_index: Callable[[], VectorIndex],
        *,
        model: str,
        repository: Path,
        window_s: float,
        batch_size: int = 128,
        retry_s: float = 2.0,
        admission: AdmissionController | None = None,
        query_twin: bool = True,
    ) -> None:
        self.service, self.versions, self.control = service, versions, control
        self.make_index, self.model, self.repository = make_index, model, repository
        self.window_s, self.batch_size, self.retry_s = window_s, batch_size, retry_s
        super().__init__(admission)
        self._connect_lock = asyncio.Lock()
        self._follow_lock = asyncio.Lock()  # the feed and refused writes may follow at once
        twin = query_model_name(model)
        # The batcher-free twin for search queries (see gateway.versions.query_model), when
        # the launcher made one; it must serve exactly the versions the model serves.
        self.query_model: str | None = (
            twin if query_twin and (repository / twin / "config.pbtxt").is_file() else None)

    @property
    def embedder(self) -> EmbedderClient:
        return self.service.embedder

    @property
    def models(self) -> ActiveModels:
        return self.service.models

    async def _in_triton(self, versions: list[str]) -> list[str]:
        """The Triton versions among ``versions`` (remote ones are served elsewhere)."""
        return [v for v in versions if await self.embedder.remote(v) is None]

    async def _serve(self, versions: list[str], *, twin: list[str] | None = None) -> None:
        """Serve exactly ``versions`` in the model and ``twin`` (default: the same) in its
        query twin. A migration target needs no twin until the switch: searches use the
        active version, so ``activate`` does not wait for a second load. Remote versions are
        left out; with none left, Triton keeps what it serves."""
        triton = await self._in_triton(versions)
        if not triton:
            return
        if triton != await self.control.served_versions(self.model):
            await self.control.serve(self.model, triton)
        await self._serve_twin(triton if twin is None else twin)

    async def _serve_twin(self, versions: list[str]) -> None:
        if self.query_model is None:
            return
        versions = await self._in_triton(versions)
        if not versions:
            return
        try:  # a version exported since launch needs its link in the twin first
            if await self.control.served_versions(self.query_model) == versions:
                return
            await asyncio.to_thread(sync_query_model, self.repository, self.model)
            await self.control.serve(self.query_model, versions)
        except (GatewayError, OSError, RuntimeError) as exc:  # searches use the batching model
            log.warning("query model %s cannot serve %s (%s); searches use %s", self.query_model,
                        versions, getattr(exc, "detail", exc), self.model)
            self.query_model = self.models.query_model = None

    async def _prepare_local(self, version: str) -> None:
        """Let the gateway embed ``version``'s search queries itself, when it can
        (``gateway.inference.local_encoder``; checked against Triton's vectors)."""
        encoder = self.service.local_encoder
        if encoder is None or await self.embedder.remote(version) is not None:
            return  # the local query encoder is for Triton versions only

        async def served(texts: list[str]) -> np.ndarray:
            return await self.embedder.embed(texts, version=version)

        await encoder.prepare(version, served)

    async def keep_connected(self, first_delay_s: float = 0.5, max_delay_s: float = 5.0) -> None:
        """Retry ``connect`` with back-off until it succeeds (Triton down at start-up)."""
        delay = first_delay_s
        while self.models.info is None:
            try:
                await self.connect()
            except GatewayError as exc:
                log.info("Triton not ready (%s); retrying in %.1f s", exc.detail, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay_s)

    # -- start-up ---------------------------------------------------------------------------
    async def connect(self) -> ModelInfo:
        """Make Triton serve the store's active version (and a migration target); pin it.

        On a fresh store the newest version Triton serves becomes the active one.
        """
        async with self._connect_lock:
            if self.models.info is not None:
                return self.models.info
            state = await self.versions.model_state(self.model)
            if state is None:
                served = await self.control.served_versions(self.model)
                if not served:
                    raise InferenceUnavailable(f"Triton serves no version of {self.model!r}")
                await self.versions.set_active_version(self.model, served[-1])
                state = await self.versions.model_state(self.model)
                assert state is not None
            wanted = sorted([state.active] + ([state.target] if state.target else []), key=int)
            in_triton = await self._in_triton(wanted)
            # A remote active version with no Triton target needs no Triton at all.
            if in_triton and in_triton != await self.control.served_versions(self.model):
                await self.control.serve(self.model, in_triton)
            await self._serve_twin([state.active])
            info = await self.embedder.probe(state.active)
            self.models.pin(info, self.query_model)
            await self._prepare_local(state.active)
            self.status.active = state.active
            if state.target and self._task is None:
                await self._resume(state)
            return info

    async def _resume(self, state: ModelState) -> None:
        assert state.target is not None
        try:
            target = await self._target_space(state.target)
        except GatewayError as exc:
            log.error("cannot resume migration to %s:%s (%s); rolling back", self.model,
                      state.target, exc)
            await self.versions.abandon_migration(self.model)
            return
        rows = await self.versions.shadow_vectors()
        await asyncio.to_thread(target.index.rebuild, rows)
        self.models.begin_target(target)
        self._start(state.target, state.started_at)
        log.info("resuming migration to %s:%s after %d re-embedded memories", self.model,
                 state.target, len(rows))

    async def _target_space(self, version: str) -> Space:
        info = await self.embedder.probe(version)
        index = self.make_index()
        return Space(info, index, SearchBatcher(index, window_s=self.window_s))

    # -- replicas -------------------------------------------------------------------------------
    async def follow(self) -> None:
        """Another replica changed the model state (the change feed said so): take it.

        A migration begun elsewhere gets a target space here (filled from the stored shadow
        vectors; this replica's writes then store their target vectors too), one abandoned
        elsewhere is dropped, and a switch made elsewhere is adopted with an index loaded
        from the store, so every replica serves one space. The replica running the migration
        job has nothing to follow. Not pinned yet: ``connect`` reads the state anyway.
        Callers at once (the feed, writes the store refused for a stale version) go one at a
        time; the later ones find nothing left to follow.
        """
        async with self._follow_lock:
            await self._follow()

    async def _follow(self) -> None:
        running = self._task is not None and not self._task.done()
        if self.models.info is None or (running and self._task is not asyncio.current_task()):
            return
        state = await self.versions.model_state(self.model)
        if state is None:
            return
        if state.active != self.models.info.version:
            await self._adopt_elsewhere(state.active)
            return
        target = self.models.target
        if state.target is not None and (target is None
                                         or target.info.version != state.target):
            await self._serve(sorted([state.active, state.target], key=int),
                              twin=[state.active])
            space = await self._target_space(state.target)
            async with self.service.exclusive():
                rows = await self.versions.shadow_vectors()
                await asyncio.to_thread(space.index.rebuild, rows)
                self.models.begin_target(space)
            self.status = MigrationStatus(state="elsewhere", active=state.active,
                                          target=state.target, started_at=state.started_at)
            if target is not None:
                await target.close()
        elif state.target is None and target is not None:
            async with self.service.exclusive():
                self.models.begin_target(None)
            await target.close()
            await self._serve([state.active])
            self.status.state, self.status.target = "idle", None

    async def _adopt_elsewhere(self, version: str) -> None:
        """Serve ``version`` and adopt it with an index loaded from the store."""
        await self._serve([version])
        await self._prepare_local(version)
        space = await self._target_space(version)
        async with self.service.exclusive():
            rows = await self.service.store.vectors()
            # The store refuses old-space vectors since its migration 14 (``space_guard``);
            # rows written before it may still hold one: leave those of another size out.
            kept = [r for r in rows if r[2].shape[-1] == space.info.dim]
            if len(kept) < len(rows):
                log.warning("%d memories hold vectors of another size than %s: left out of "
                            "the index", len(rows) - len(kept), space.info.label)
            await asyncio.to_thread(space.index.rebuild, kept)
            old, target = self.models.active, self.models.target
            self.models.adopt(space)
        if self.service.local_encoder is not None:
            self.service.local_encoder.retain([version])
        for gone in (old, target):
            if gone is not None and gone.index is not space.index:
                await gone.close()
        self.status = MigrationStatus(state="done", active=version, finished_at=utc_now())
        log.info("switched %s to version %s (switched by another replica)", self.model,
                 version)

    # -- operator actions ---------------------------------------------------------------------
    async def view(self) -> dict[str, Any]:
        """What the admin API shows: versions on disk, served, active, and the migration."""
        state = await self.versions.model_state(self.model)
        served = await self.control.served_versions(self.model)
        running = ("running", "stalled", "switching")
        if self.status.state in running:
            progress = await self.versions.migration_progress()
            if self.status.state in running:  # the switch may have finished meanwhile
                self.status.done, self.status.total = progress
        remotes = self.embedder.remotes.known() if self.embedder.remotes is not None else {}
        return {
            "active": state.active if state else None,
            "target": state.target if state else None,
            "served": served,
            "repository": declared_versions(self.repository, self.model),
            "remote": {v: remote.describe() for v, remote in sorted(remotes.items())},
            "migration": asdict(self.status),
        }

    async def activate(self, version: str) -> MigrationStatus:
        """Start migrating to ``version``; returns at once (poll ``status``)."""
        info = await self.connect()
        if self._task is not None and not self._task.done():
            raise Conflict(f"a migration to {self.model}:{self.status.target} is running")
        if version not in declared_versions(self.repository, self.model):
            raise NotFound(f"{self.model} version {version} is not in the model repository")
        if version == info.version:
            raise Conflict(f"{self.model}:{version} is already active")
        await self.embedder.remote(version)  # a malformed declaration: 422 before any load
        state = await self.versions.model_state(self.model)
        if state is not None and state.target is not None:
            raise Conflict(f"a migration to {self.model}:{state.target} is running "
                           "(begun by another replica)")
        await self._serve(sorted([info.version, version], key=int), twin=[info.version])
        target = await self._target_space(version)  # a remote one's registration probe
        started = utc_now()
        if not await self.versions.begin_migration(self.model, version, started):
            await target.close()  # another replica began one meanwhile: it runs the job
            raise Conflict(f"a migration of {self.model} was begun by another replica")
        self.models.begin_target(target)
        self._start(version, started)
        return self.status

    async def abandon(self) -> MigrationStatus:
        """Roll a running or stalled migration back; the active version stays."""
        state = await self.versions.model_state(self.model)
        if state is None or state.target is None:
            raise Conflict("no migration to abandon")
        await self._cancel()
        async with self.service.exclusive():
            await self.versions.abandon_migration(self.model)
            target = self.models.target
            self.models.begin_target(None)
        if target is not None:
            await target.close()
        await self._serve([state.active])
        self.status.state, self.status.target = "idle", None
        return self.status

    # -- the job ------------------------------------------------------------------------------
    def _start(self, version: str, started_at: str | None) -> None:
        self._launch(self._run(version), name=f"migrate-{version}", target=version,
                     started_at=started_at)

    async def _run(self, version: str) -> None:
        target = self.models.target
        assert target is not None
        label = target.info.label
        began, embedded = time.monotonic(), 0
        while True:
            try:
                state = await self.versions.model_state(self.model)
                assert state is not None
                self.status.done, self.status.total = await self.versions.migration_progress()
                batch = await self.versions.migration_pending(state.cursor, self.batch_size)
                if not batch:
                    if await self._switch(version, target):
                        return
                    continue  # rows arrived meanwhile: go round again
                async with self._ingest_slot():
                    vectors = await self.embedder.embed([b.text for b in batch], version=version)
                async with self.service.exclusive():
                    written = await self.versions.put_shadow_batch(self.model, label, batch,
                                                                   vectors)
                    keep = [i for i, b in enumerate(batch) if b in written and not b.archived]
                    await self.service.add_to_index(
                        target.index, [batch[i].user_id for i in keep],
                        [batch[i].id for i in keep], vectors[keep])
                embedded += len(batch)
                self.status.rate_per_s = round(embedded / (time.monotonic() - began), 1)
                self.status.state, self.status.error = "running", None
            except asyncio.CancelledError:
                raise
            except StaleVersion:  # another replica abandoned or replaced this migration
                log.warning("migration to %s ended by another replica", label)
                await self.follow()
                return
            except Overloaded:  # user traffic holds the ingest slots: yield to it, then resume
                await asyncio.sleep(self.retry_s / 4)
            except GatewayError as exc:  # Triton away or overloaded: keep the cursor, retry
                self.status.state, self.status.error = "stalled", str(exc.detail)
                log.warning("migration to %s stalled: %s; retrying", label, exc.detail)
                await asyncio.sleep(self.retry_s)

    async def _switch(self, version: str, target: Space) -> bool:
        self.status.state = "switching"
        active = self.models.info
        if active is not None:  # searches embed with the twin from the switch on
            await self._serve_twin(sorted({active.version, version}, key=int))
        await self._prepare_local(version)  # ... or in the gateway
        async with self.service.exclusive():
            if not await self.versions.switch_version(self.model, version, target.info.label):
                return False
            old = self.models.active
            self.models.adopt(target)
        log.info("switched %s to version %s", self.model, version)
        if self.service.local_encoder is not None:
            self.service.local_encoder.retain([version])
        try:
            await self._serve([version])
        except GatewayError as exc:  # the old version lingers in Triton; harmless
            log.warning("could not unload the old %s version: %s", self.model, exc.detail)
        if old is not None:
            await old.close()
        _, total = await self.versions.migration_progress()
        self.status.done = self.status.total = total
        self.status.state, self.status.active = "done", version
        self.status.finished_at = utc_now()
        return True

