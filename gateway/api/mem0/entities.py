"""Mem0 entities (user, agent, app, run) <-> the service's user partitions, in one place.

The service keeps every memory in one user's partition. Mem0 also allows memories that belong
to no user (an agent's, an app's or a run's own): those live in a partition named after that
entity, ``"\\x1e<type>\\x1e<name>"``. The control character cannot occur in a public id (they
are refused), so such a partition never collides with a user. Tenancy is the namespace's job
(``TenantScope``): it turns these names into internal ids and tells which ones the caller owns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.auth.scope import SEPARATOR as TENANT_SEPARATOR
from gateway.errors import InvalidInput

ENTITY_TYPES = ("user", "agent", "app", "run")
OWN_PARTITION = "\x1e"  # marks a partition that belongs to a non-user entity
MAX_ENTITY_CHARS = 128


class UserNamespace(Protocol):
    """Public user ids <-> internal ones (``gateway.auth.scope.TenantScope`` is one)."""

    def internal(self, user_id: str) -> str: ...

    def owns(self, internal_user_id: str) -> bool: ...

    def public(self, internal_user_id: str) -> str: ...


def check_entity_id(value: str, field: str) -> str:
    """A usable Mem0 id: 1..128 characters, not blank, no control characters."""
    if not value or not value.strip() or len(value) > MAX_ENTITY_CHARS:
        raise InvalidInput(f"{field} must be 1 to {MAX_ENTITY_CHARS} characters, not blank")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise InvalidInput(f"{field} must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{field} must be valid Unicode") from exc
    return value


@dataclass(frozen=True, slots=True)
class Entity:
    """The Mem0 ids of one memory; at least one is set."""

    user_id: str | None = None
    agent_id: str | None = None
    app_id: str | None = None
    run_id: str | None = None

    def __post_init__(self) -> None:
        for kind in ENTITY_TYPES:
            value = getattr(self, f"{kind}_id")
            if value is not None:
                check_entity_id(value, f"{kind}_id")
        if self.empty:
            raise InvalidInput("give at least one of user_id, agent_id, app_id, run_id")

    @property
    def empty(self) -> bool:
        return not (self.user_id or self.agent_id or self.app_id or self.run_id)

    def owner(self) -> tuple[str, str]:
        """(type, name) of the entity whose partition holds the memory."""
        for kind in ENTITY_TYPES:
            value = getattr(self, f"{kind}_id")
            if value:
                return kind, value
        raise AssertionError("an Entity always has an id")


class Partitions:
    """Where a caller's memories live: partition names in, service user ids out, and back."""

    def __init__(self, namespace: UserNamespace) -> None:
        self.namespace = namespace

    def of(self, entity: Entity) -> str:
        kind, name = entity.owner()
        return self.for_entity(kind, name)

    def for_entity(self, kind: str, name: str) -> str:
        """The partition of an entity's own memories (a user's partition is the user)."""
        local = name if kind == "user" else f"{OWN_PARTITION}{kind}{OWN_PARTITION}{name}"
        return self.namespace.internal(local)

    def owns(self, internal_user_id: str) -> bool:
        return self.namespace.owns(internal_user_id)

    def stored_range(self) -> tuple[str, str | None]:
        """Where the caller's partitions lie among stored user ids, for a store-side count
        that reads only them: their common prefix, and a text that no id of theirs holds
        (the tenant separator, for the unprefixed default tenant) or None."""
        prefix = self.namespace.internal("")
        without = TENANT_SEPARATOR if not prefix and not self.owns(TENANT_SEPARATOR) else None
        return prefix, without

    def user_of(self, internal_user_id: str) -> str | None:
        """The public user id of an owned partition; None for a non-user entity's own one."""
        local = self.namespace.public(internal_user_id)
        return None if local.startswith(OWN_PARTITION) else local


class _SameIds:
    """The namespace of a single-tenant gateway: ids are used as they are."""

    def internal(self, user_id: str) -> str:
        return user_id

    def owns(self, internal_user_id: str) -> bool:
        return True

    def public(self, internal_user_id: str) -> str:
        return internal_user_id


SINGLE_TENANT: UserNamespace = _SameIds()
