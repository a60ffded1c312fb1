"""Who is calling: a tenant and a scope, resolved once per request from the API key."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from gateway.auth.scope import DEFAULT_TENANT, TenantScope


class KeyScope(IntEnum):
    """What a key may do; each scope includes the ones below it.

    ``admin`` acts on its own tenant only (jobs over its users); ``operator`` is the service's
    own: model versions, jobs over every tenant, ``/metrics``.
    """

    READ = 1
    WRITE = 2
    ADMIN = 3
    OPERATOR = 4

    @classmethod
    def parse(cls, name: str) -> KeyScope:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    scope: KeyScope
    key_id: str | None = None  # None when authentication is off
    rate_per_s: float | None = None  # the key's own request rate limit, if it has one
    users: TenantScope = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", TenantScope(self.tenant))

    def allows(self, needed: KeyScope) -> bool:
        return self.scope >= needed

    @property
    def operator(self) -> bool:
        """Whether it may act on the whole service (every tenant)."""
        return self.scope >= KeyScope.OPERATOR

    @property
    def admission_label(self) -> str:
        """The tenant label admission control counts (fair share, tenant rate)."""
        return f"tenant:{self.tenant}"


# Authentication off: everyone is the default tenant with every right, the operator's included
# (loopback only, or explicitly opened by MEMORY_AUTH=off).
ANONYMOUS = Principal(DEFAULT_TENANT, KeyScope.OPERATOR)
