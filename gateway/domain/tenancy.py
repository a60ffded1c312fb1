"""Which tenant an internal user id belongs to, for the layers below the API.

``gateway.auth.scope`` namespaces a tenant's users as ``f"{tenant}\\x1f{user_id}"`` (the
default tenant keeps public ids as they are). Per-tenant state below the API (the query cache)
needs the tenant back without importing the auth layer, so the rule is read here.
"""

from __future__ import annotations

TENANT_SEPARATOR = "\x1f"  # the same separator as gateway.auth.scope.SEPARATOR (a test pins it)
DEFAULT_TENANT_KEY = ""  # the default tenant's users carry no prefix


def tenant_of(internal_user_id: str) -> str:
    """The tenant part of an internal user id; ``""`` for the default tenant."""
    tenant, separator, _ = internal_user_id.partition(TENANT_SEPARATOR)
    return tenant if separator else DEFAULT_TENANT_KEY
