"""Natural batching in the gateway for small embedding calls to the batcher-free model.

Triton's dynamic batcher (python backend, CPU) now and then holds a lone request for ~0.5 s,
so search queries and small writes go to the batcher-free twin instead. Without a batcher,
concurrent callers would each pay a whole model run; this coalescer batches them with no
window at all: a call goes out at once when nothing is in flight for its (model, version);
calls that arrive while one is in flight wait for it and then go out together, in one
request. A lone caller never waits for company; eight concurrent callers share runs.

The batch runs outside every caller's task, under the latest deadline among its members (none
if one of them has none), so one caller's short deadline never fails the others.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np

from gateway.deadline import Deadline, current_deadline, deadline_scope

# Texts in one coalesced request: bounds what a caller can be made to wait behind.
MAX_COALESCED_TEXTS = 64

EmbedFn = Callable[[list[str], str, str], Awaitable[np.ndarray]]  # (texts, version, model)


@dataclass(slots=True)
class _Call:
    texts: list[str]
    deadline: Deadline | None
    future: asyncio.Future[np.ndarray] = field(repr=False)


@dataclass(slots=True)
class CoalescerStats:
    calls: int = 0  # callers served
    requests: int = 0  # Triton requests made for them

    @property
    def calls_per_request(self) -> float:
        return self.calls / self.requests if self.requests else 0.0


class EmbedCoalescer:
    def __init__(self, embed: EmbedFn, *, max_texts: int = MAX_COALESCED_TEXTS) -> None:
        self._embed = embed
        self.max_texts = max_texts
        self.stats = CoalescerStats()
        self._waiting: dict[tuple[str, str], list[_Call]] = {}
        self._draining: set[tuple[str, str]] = set()

    async def embed(self, texts: list[str], version: str, model: str) -> np.ndarray:
        """``[len(texts), dim]`` from ``model``/``version``, sharing a request with whoever
        else asks while one is in flight."""
        deadline = current_deadline()
        if deadline is not None and deadline.expired:
            return await self._embed(texts, version, model)  # raises DeadlineExceeded there
        key = (model, version)
        call = _Call(list(texts), deadline, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(key, []).append(call)
        if key not in self._draining:
            self._start_drain(key)
        return await call.future

    def _start_drain(self, key: tuple[str, str]) -> None:
        self._draining.add(key)
        # A fresh context: the drain must not inherit the first caller's deadline.
        asyncio.get_running_loop().create_task(
            self._drain(key), name="embed-coalescer", context=contextvars.Context())

    async def _drain(self, key: tuple[str, str]) -> None:
        model, version = key
        try:
            while batch := self._take(key):
                await self._run(batch, model, version)
        finally:
            self._draining.discard(key)
            if self._waiting.get(key):  # arrived after the last take: start again
                self._start_drain(key)

    def _take(self, key: tuple[str, str]) -> list[_Call]:
        """The waiting calls, oldest first, up to ``max_texts`` texts (at least one call)."""
        waiting = self._waiting.get(key, [])
        waiting[:] = [c for c in waiting if not c.future.done()]  # cancelled callers
        batch: list[_Call] = []
        texts = 0
        while waiting and (not batch or texts + len(waiting[0].texts) <= self.max_texts):
            call = waiting.pop(0)
            batch.append(call)
            texts += len(call.texts)
        if not waiting:
            self._waiting.pop(key, None)
        return batch

    async def _run(self, batch: list[_Call], model: str, version: str) -> None:
        texts = [t for call in batch for t in call.texts]
        deadlines = [call.deadline for call in batch]
        latest = None if None in deadlines else max(
            (d for d in deadlines if d is not None), key=lambda d: d.expires_at)
        self.stats.calls += len(batch)
        self.stats.requests += 1
        try:
            with deadline_scope(latest):
                vectors = await self._embed(texts, version, model)
        except asyncio.CancelledError:  # shutting down: nobody is left hanging
            for call in batch:
                call.future.cancel()
            raise
        except Exception as exc:  # every caller of the batch gets it
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(exc)
            return
        start = 0
        for call in batch:
            stop = start + len(call.texts)
            if not call.future.done():
                call.future.set_result(vectors[start:stop])
            start = stop
