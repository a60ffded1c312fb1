"""The background job of a version swap: one task, started outside any request's context,
taking ingest slots at background priority, cancelled on close. Shared by the embedder's
and CLIP's version swaps (``activation``, ``clip``), which differ in what they re-embed."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from gateway.admission.controller import AdmissionController
from gateway.admission.limiter import Priority


@dataclass
class MigrationStatus:
    state: str = "idle"  # idle | running | stalled | switching | done
    active: str | None = None
    target: str | None = None
    done: int = 0
    total: int = 0
    rate_per_s: float = 0.0
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class ReembedJob:
    def __init__(self, admission: AdmissionController | None) -> None:
        self.admission = admission  # re-embedding takes ingest slots at background priority
        self.status = MigrationStatus()
        self._task: asyncio.Task[None] | None = None

    def _launch(self, job: Coroutine[Any, Any, None], *, name: str, target: str,
                started_at: str | None) -> None:
        self.status = MigrationStatus(state="running", active=self.status.active,
                                      target=target, started_at=started_at)
        # A fresh context: the job must not inherit the deadline of the request that started it.
        self._task = asyncio.create_task(job, name=name, context=contextvars.Context())

    async def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def close(self) -> None:
        await self._cancel()

    def _ingest_slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """An ingest admission slot at background priority: user writes go first."""
        if self.admission is None:
            return contextlib.nullcontext()
        return self.admission.slot("ingest", Priority.BACKGROUND)
