"""A Mem0 Platform-compatible API, so the official ``mem0ai`` client works unmodified.

    entities.py     Mem0 entities <-> the service's user partitions (tenancy via TenantScope)
    filters.py      Mem0's v2 filter grammar: parse, evaluate, analyse
    query.py        request parts (filters, top-level ids, query-string dicts) -> one filter
    finder.py       filters over the service: partitions, pushdown, search and list
    views.py        memories in Mem0's wire shape
    schemas.py      the request bodies the client sends
    adds.py         adds through the ingest path: dedup events, infer, async_mode (PENDING)
    router.py       the routes below in one router, for the app
    memories.py     /v3/memories/..., /v1/memories/{id}/..., /v1/batch/, /v1/event/{id}/
                    (and 1.0.x routes)
    platform.py     /v1/ping/, /v1/entities/, /v2/entities/{type}/{name}/
    unsupported.py  profiles, exports, webhooks, project admin: 501 with a detail

The service never sees Mem0's vocabulary: everything is translated here.
"""
