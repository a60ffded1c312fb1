"""API keys, callers and tenants.

    keys.py           key format, generation, hashing (only hashes are stored)
    store.py          the keys file (SQLite): create, find, list, revoke
    principal.py      Principal (tenant, scope) and KeyScope (read < write < admin)
    scope.py          TenantScope: public user ids <-> internal, tenant-prefixed ones
    authenticator.py  request headers -> Principal, or Unauthorized
    middleware.py     resolves the caller once per request, before admission control
"""

from gateway.auth.principal import ANONYMOUS, KeyScope, Principal
from gateway.auth.scope import DEFAULT_TENANT, TenantScope

__all__ = ["ANONYMOUS", "DEFAULT_TENANT", "KeyScope", "Principal", "TenantScope"]
