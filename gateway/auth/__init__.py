"""API keys, callers and tenants.

    keys.py           key format, generation, hashing (only hashes are stored)
    store.py          the keys file (SQLite): create, find, list, revoke
    principal.py      Principal (tenant, scope) and KeyScope (read < write < admin)
    scope.py          TenantScope: public user ids <-> internal, tenant-prefixed ones
    authenticator.py  request headers -> Principal, or Unauthorized
    middleware.py     resolves the caller once per request, before admission control
"""
