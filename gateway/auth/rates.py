"""Per-key request rates, through the admission ``TenantPolicy`` hook.

A key may carry its own rate (``python -m gateway.keys create --rate N``). Each distinct rate
gets one ``RateLimit`` (the admission token-bucket policy) whose buckets are keyed by key id,
so keys of one tenant are limited one by one, on top of the tenant's fair share.
"""

from __future__ import annotations

from gateway.admission.tenants import RateLimit
from gateway.auth.principal import Principal

SHED_REASON = "key_rate"


class KeyRates:
    def __init__(self) -> None:
        self._limits: dict[float, RateLimit] = {}

    def admit(self, principal: Principal) -> str | None:
        """None to let the request through, else the shed reason."""
        rate = principal.rate_per_s
        if principal.key_id is None or rate is None:
            return None
        limit = self._limits.get(rate)
        if limit is None:
            limit = self._limits[rate] = RateLimit(rate)
        return SHED_REASON if limit.admit(principal.key_id) is not None else None
