"""Which paths are the API (a key is required there when keys are required) and which are open.

Open without a key, by decision (docs/operations.md, "Endpoints without a key"): ``/healthz``
and ``/readyz`` (probes carry no credentials; they tell nothing about any tenant), the docs
(``/docs``, ``/redoc``, ``/openapi.json``: the API's shape is public, and
``MEMORY_DOCS=false`` turns them off) and ``/metrics`` (its route decides). Everything under
these prefixes is the API, the Mem0 routes that answer 501 included: a keyless request there
is refused before admission and before its body is read.
"""

from __future__ import annotations

API_PREFIXES = ("/v1/", "/v2/", "/v3/", "/api/")  # the service's and the Mem0-compatible API


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES) or path.rstrip("/") in {p.rstrip("/")
                                                                  for p in API_PREFIXES}
