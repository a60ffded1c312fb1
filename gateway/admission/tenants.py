"""Per-tenant policies: the hook that keeps one tenant from starving the others.

A tenant is whoever the request says it acts for (API key, tenant or user id; see the
middleware). A policy is asked before a request may take a slot or a queue place in a route
class, and told when it gives it back. ``FairShare`` caps what one tenant may hold at once;
``RateLimit`` is a per-tenant token bucket. Requests without a tenant skip both: capping an
anonymous crowd as one tenant would only shrink everyone's capacity.
"""

from __future__ import annotations

import time
from typing import Protocol


class TenantPolicy(Protocol):
    def admit(self, tenant: str) -> str | None:
        """None to let the request through, else the shed reason (a metrics label)."""

    def release(self, tenant: str) -> None:
        """The request admitted by ``admit`` is finished (or was shed later on)."""


class FairShare:
    """At most ``cap`` requests of one tenant running or queued in this route class."""

    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        self._held: dict[str, int] = {}

    def admit(self, tenant: str) -> str | None:
        held = self._held.get(tenant, 0)
        if held >= self.cap:
            return "tenant_share"
        self._held[tenant] = held + 1
        return None

    def release(self, tenant: str) -> None:
        held = self._held.get(tenant, 0) - 1
        if held > 0:
            self._held[tenant] = held
        else:
            self._held.pop(tenant, None)


class RateLimit:
    """Token bucket per tenant: ``rate`` requests/s sustained, bursts up to ``burst``."""

    _PRUNE_AT = 10_000  # tenants remembered before idle (full) buckets are forgotten

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, stamp)

    def admit(self, tenant: str) -> str | None:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(tenant, (self.burst, now))
        tokens = min(self.burst, tokens + (now - stamp) * self.rate)
        if tokens < 1.0:
            self._buckets[tenant] = (tokens, now)
            return "tenant_rate"
        self._buckets[tenant] = (tokens - 1.0, now)
        if len(self._buckets) > self._PRUNE_AT:
            self._prune(now)
        return None

    def release(self, tenant: str) -> None:
        """Tokens are spent on admission, not returned."""

    def _prune(self, now: float) -> None:
        full = [t for t, (tokens, stamp) in self._buckets.items()
                if tokens + (now - stamp) * self.rate >= self.burst]
        for tenant in full:
            del self._buckets[tenant]


class AllOf:
    """Several policies in order; a refusal undoes the admissions already granted."""

    def __init__(self, policies: list[TenantPolicy]) -> None:
        self.policies = policies

    def admit(self, tenant: str) -> str | None:
        for i, policy in enumerate(self.policies):
            reason = policy.admit(tenant)
            if reason is not None:
                for granted in self.policies[:i]:
                    granted.release(tenant)
                return reason
        return None

    def release(self, tenant: str) -> None:
        for policy in self.policies:
            policy.release(tenant)
