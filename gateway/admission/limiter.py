"""Bounded concurrency for one route class, with a small priority queue in front of it.

Why bounded both ways: past the point where the backend is saturated, every extra request in
flight only adds queueing delay to all of them, and an unbounded queue turns overload into
timeouts for everyone. So at most ``limit`` requests run, at most ``queue_size`` wait, each
waits at most ``max_wait_s`` (or until its deadline), and anything beyond is refused at once
with ``Overloaded`` (429 + Retry-After) while the client can still retry elsewhere or later.

The queue is ordered by priority, then arrival. When it is full, a more urgent arrival takes
the place of the least urgent waiter (that one is shed as ``preempted``), so interactive
searches are never refused while batch or background work is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from dataclasses import dataclass, field
from enum import IntEnum

from gateway.admission.adaptive import AdaptiveLimit
from gateway.admission.tenants import TenantPolicy
from gateway.deadline import Deadline
from gateway.errors import Overloaded


class Priority(IntEnum):
    """Lower runs first."""

    INTERACTIVE = 0  # a person or an agent is waiting for the answer
    BATCH = 1  # bulk imports, offline jobs
    BACKGROUND = 2  # the gateway's own work: re-embedding, consolidation


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class ClassLimiter:
    """Admission for one route class (``ingest``, ``search``, ``admin``)."""

    def __init__(
        self, name: str, *, limit: int, queue_size: int, max_wait_s: float,
        retry_after_s: int = 1, tenants: TenantPolicy | None = None, enabled: bool = True,
        adaptive: AdaptiveLimit | None = None,
    ) -> None:
        self.name = name
        self.limit = max(1, limit)
        self.queue_size = max(0, queue_size)
        self.max_wait_s = max_wait_s
        self.retry_after_s = retry_after_s
        self.tenants = tenants
        self.enabled = enabled  # False: count in-flight work, never wait or refuse
        self.adaptive = adaptive  # moves ``limit`` within [minimum, the configured limit]
        self.in_flight = 0
        self._queue: list[_Waiter] = []
        self._seq = itertools.count()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def _shed(self, reason: str, detail: str) -> Overloaded:
        return Overloaded(f"{self.name} {detail}; retry later",
                          retry_after=self.retry_after_s, reason=reason)

    async def acquire(
        self, priority: Priority = Priority.INTERACTIVE, *, tenant: str | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        """Return once admitted (call ``release`` after), or raise ``Overloaded`` quickly."""
        if not self.enabled:
            self.in_flight += 1
            return
        if deadline is not None and deadline.expired:
            deadline.dropped_at = "queue"
            raise self._shed("deadline", "request arrived past its deadline")
        if tenant is not None and self.tenants is not None:
            reason = self.tenants.admit(tenant)
            if reason is not None:
                raise self._shed(reason, "tenant is over its share")
        try:
            await self._acquire_slot(priority, deadline)
        except BaseException:
            if tenant is not None and self.tenants is not None:
                self.tenants.release(tenant)
            raise

    async def _acquire_slot(self, priority: Priority, deadline: Deadline | None) -> None:
        if self.in_flight < self.limit and not self._queue:
            self.in_flight += 1
            return
        waiter = _Waiter(int(priority), next(self._seq), asyncio.get_running_loop().create_future())
        if len(self._queue) >= self.queue_size:
            worst = max(self._queue) if self._queue else None
            if worst is None or worst.priority <= waiter.priority:
                raise self._shed("queue_full", "is at capacity")
            self._remove(worst)
            worst.future.set_exception(self._shed("preempted", "queued work was preempted"))
        heapq.heappush(self._queue, waiter)
        wait_s = self.max_wait_s
        if deadline is not None:
            wait_s = min(wait_s, deadline.remaining())
        try:
            done, _ = await asyncio.wait({waiter.future}, timeout=max(0.0, wait_s))
        except asyncio.CancelledError:  # the client went away while waiting
            self._abandon(waiter)
            raise
        if not done:
            self._remove(waiter)
            if deadline is not None and deadline.expired:
                deadline.dropped_at = "queue"
                raise self._shed("deadline", "request deadline passed while queued")
            raise self._shed("queue_timeout", "queue wait exceeded its bound")
        waiter.future.result()  # raises if preempted; the slot was handed over otherwise

    def release(self, tenant: str | None = None, *, service_s: float | None = None) -> None:
        """Give the slot back: to the most urgent waiter if there is one, unless the limit has
        shrunk below what is running. ``service_s`` (how long the request held the slot)
        feeds the adaptive limit."""
        if tenant is not None and self.tenants is not None and self.enabled:
            self.tenants.release(tenant)
        if self.adaptive is not None and service_s is not None and self.enabled:
            self.limit = self.adaptive.observe(service_s,
                                               saturated=self.in_flight >= self.limit)
        if not (self.in_flight <= self.limit and self._hand_over()):
            self.in_flight -= 1  # else the slot passed on to a waiter: in_flight unchanged
        while self.in_flight < self.limit and self._hand_over():  # the limit grew
            self.in_flight += 1

    def _hand_over(self) -> bool:
        """Admit the most urgent live waiter, if any."""
        while self._queue:
            waiter = heapq.heappop(self._queue)
            if not waiter.future.done():
                waiter.future.set_result(None)
                return True
        return False

    def _remove(self, waiter: _Waiter) -> None:
        with contextlib.suppress(ValueError):
            self._queue.remove(waiter)
            heapq.heapify(self._queue)

    def _abandon(self, waiter: _Waiter) -> None:
        if waiter.future.done() and not waiter.future.cancelled() \
                and waiter.future.exception() is None:
            self.release()  # it had just been handed a slot: pass it on
        else:
            self._remove(waiter)
            waiter.future.cancel()
