"""Tenant namespacing of user ids, done once at the API boundary.

The domain layer and the store know only user ids; tenants never reach them. A tenant's users
live under internal ids ``f"{tenant}\\x1f{user_id}"``, so two tenants may each have a user
"alice", and every per-user operation (search, list, delete-all) is isolated by construction.
The tenant ``default`` (auth off, or keys of that tenant) keeps public ids as they are, so
databases written before authentication existed keep working. The separator is a control
character that the API refuses in every id, so no public id can forge another tenant's prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from gateway.domain.model import Memory, ScoredMemory
from gateway.store.types import UserRange

DEFAULT_TENANT = "default"
SEPARATOR = "\x1f"  # ASCII unit separator: refused in public ids (see api.schemas.ScopeId)
MAX_TENANT_CHARS = 64
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def valid_tenant(name: str) -> bool:
    return TENANT_PATTERN.fullmatch(name) is not None


def tenant_of(internal_user_id: str) -> str:
    """The tenant a stored user id belongs to."""
    tenant, separator, _ = internal_user_id.partition(SEPARATOR)
    return tenant if separator else DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class TenantScope:
    """Maps one tenant's public user ids to internal ones and back."""

    tenant: str = DEFAULT_TENANT

    @property
    def _prefix(self) -> str:
        return "" if self.tenant == DEFAULT_TENANT else self.tenant + SEPARATOR

    def internal(self, user_id: str) -> str:
        return self._prefix + user_id

    def owns(self, internal_user_id: str) -> bool:
        """Whether a stored user id belongs to this tenant."""
        if not self._prefix:
            return SEPARATOR not in internal_user_id
        return internal_user_id.startswith(self._prefix)

    @property
    def user_range(self) -> UserRange:
        """This tenant's stored user ids, for a walk over them (a job over its users)."""
        if not self._prefix:
            return UserRange(without=SEPARATOR)
        return UserRange(prefix=self._prefix)

    def public(self, internal_user_id: str) -> str:
        return internal_user_id[len(self._prefix):]

    def outward(self, memory: Memory) -> Memory:
        """The memory as this tenant sees it (public user id)."""
        return replace(memory, user_id=self.public(memory.user_id))

    def outward_scored(self, scored: ScoredMemory) -> ScoredMemory:
        return replace(scored, memory=self.outward(scored.memory))
