"""The gateway's admission controller: one limiter per route class, built from settings.

Route classes exist because their costs differ by an order of magnitude: a batch ingest may
embed a thousand texts, a search embeds one, an admin read embeds none. Separate limits keep a
flood of one kind from taking the slots of another. In-process background work (re-embedding,
consolidation) asks for a slot with ``slot(..., priority=Priority.BACKGROUND)`` and so always
yields to requests someone is waiting for.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable

from gateway.admission.activity import RequestActivity
from gateway.admission.adaptive import AdaptiveLimit
from gateway.admission.limiter import ClassLimiter, Priority
from gateway.admission.tenants import AllOf, FairShare, RateLimit, TenantPolicy
from gateway.deadline import Deadline
from gateway.errors import Overloaded
from gateway.metrics import Metrics
from gateway.settings import Settings

ROUTE_CLASSES = ("ingest", "search", "admin")


class AdmissionController:
    def __init__(self, limiters: dict[str, ClassLimiter], *, metrics: Metrics | None = None,
                 default_deadlines_s: dict[str, float] | None = None) -> None:
        self.limiters = limiters
        self.metrics = metrics
        self.default_deadlines_s = default_deadlines_s or {}
        self.activity = RequestActivity()  # client requests in flight (gateway.jobs.pacing)
        if metrics is not None:
            for name, limiter in limiters.items():
                metrics.admission_in_flight.labels(name).set_function(_reader(limiter, "in_flight"))
                metrics.admission_queue_depth.labels(name).set_function(
                    _reader(limiter, "queue_depth"))
                metrics.admission_limit.labels(name).set_function(_reader(limiter, "limit"))

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics | None = None
                      ) -> AdmissionController:
        limiters = {}
        for name in ROUTE_CLASSES:
            limit = getattr(settings, f"admission_{name}_limit")
            queue = getattr(settings, f"admission_{name}_queue")
            target_ms = getattr(settings, f"admission_{name}_target_ms")
            adaptive = AdaptiveLimit(maximum=limit, target_s=target_ms / 1000,
                                     minimum=settings.admission_min_limit) if target_ms else None
            limiters[name] = ClassLimiter(
                name, limit=limit, queue_size=queue,
                max_wait_s=settings.admission_max_wait_ms / 1000,
                retry_after_s=settings.admission_retry_after_s,
                tenants=_tenant_policy(settings, limit, queue),
                enabled=settings.admission_enabled, adaptive=adaptive,
            )
        deadlines = {name: getattr(settings, f"deadline_{name}_ms") / 1000
                     for name in ROUTE_CLASSES}
        return cls(limiters, metrics=metrics, default_deadlines_s=deadlines)

    def deadline_for(self, route_class: str, requested_s: float | None) -> Deadline | None:
        """The caller's budget if it sent one, else the class default (none if 0)."""
        seconds = requested_s if requested_s is not None else self.default_deadlines_s.get(
            route_class, 0.0)
        return Deadline.after(seconds) if seconds > 0 else None

    async def acquire(self, route_class: str, priority: Priority, *, tenant: str | None,
                      deadline: Deadline | None) -> None:
        limiter = self.limiters[route_class]
        try:
            await limiter.acquire(priority, tenant=tenant, deadline=deadline)
        except Overloaded as exc:
            self.record_shed(route_class, exc.reason)
            raise

    def release(self, route_class: str, tenant: str | None,
                service_s: float | None = None) -> None:
        self.limiters[route_class].release(tenant, service_s=service_s)

    def record_shed(self, route_class: str, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.admission_shed.labels(route_class, reason).inc()

    def record_deadline_drop(self, stage: str) -> None:
        if self.metrics is not None:
            self.metrics.deadline_drops.labels(stage).inc()

    @contextlib.asynccontextmanager
    async def slot(self, route_class: str, priority: Priority = Priority.BACKGROUND,
                   *, tenant: str | None = None) -> AsyncIterator[None]:
        """Hold one slot of ``route_class`` for in-process work; raises ``Overloaded`` when
        shed (background callers back off and retry)."""
        await self.acquire(route_class, priority, tenant=tenant, deadline=None)
        try:
            yield
        finally:
            self.release(route_class, tenant)


def _reader(limiter: ClassLimiter, attribute: str) -> Callable[[], float]:
    return lambda: float(getattr(limiter, attribute))


def tenant_cap(share: float, limit: int, queue: int) -> int:
    """What one tenant may hold of a class, running and waiting: its share of the places, and
    always below the running limit, so another tenant finds a free slot (a class of one slot
    is the exception: one is the least a cap can be)."""
    return max(1, min(math.ceil(share * (limit + queue)), limit - 1))


def _tenant_policy(settings: Settings, limit: int, queue: int) -> TenantPolicy | None:
    policies: list[TenantPolicy] = []
    if settings.admission_tenant_share > 0:
        policies.append(FairShare(tenant_cap(settings.admission_tenant_share, limit, queue)))
    if settings.admission_tenant_rate > 0:
        policies.append(RateLimit(settings.admission_tenant_rate))
    if not policies:
        return None
    return policies[0] if len(policies) == 1 else AllOf(policies)
