"""Mem0 platform routes this service cannot honour: a clear 501, never a misleading 404.

Profiles, summaries and exports need an LLM pipeline the service does not run; webhooks,
feedback and project or member administration belong to Mem0's hosted platform. The mem0ai
client raises its ``MemoryError`` for a 501, with our ``detail`` as the message.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.errors import error_responses
from gateway.errors import NotSupported

router = APIRouter(tags=["mem0"])


# (methods, path, what it is) for every route of mem0ai 2.2.1 that is not served.
ROUTES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("POST",), "/v1/feedback/", "memory feedback"),
    (("POST",), "/v1/exports/", "memory exports"),
    (("POST",), "/v1/exports/get/", "memory exports"),
    (("POST",), "/v1/summary/", "memory summaries"),
    (("GET",), "/v2/entities/user/{entity_id}/profile/", "user profiles"),
    (("POST",), "/v2/profiles/jobs/", "profile generation"),
    (("GET",), "/v2/profiles/jobs/{job_id}/", "profile generation"),
    (("GET", "POST"), "/v2/profiles/settings/", "profile settings"),
    (("GET", "PATCH", "DELETE"), "/api/v1/orgs/organizations/{org_id}/projects/{project_id}/",
     "project administration"),
    (("POST",), "/api/v1/orgs/organizations/{org_id}/projects/", "project administration"),
    (("GET", "POST", "PUT", "DELETE"),
     "/api/v1/orgs/organizations/{org_id}/projects/{project_id}/members/",
     "project members"),
    (("GET", "POST"), "/api/v1/webhooks/projects/{project_id}/", "webhooks"),
    (("PUT", "DELETE"), "/api/v1/webhooks/{webhook_id}/", "webhooks"),
)


def _refusal(what: str):  # a route handler made per feature
    async def refuse() -> None:
        raise NotSupported(f"{what} are not supported by this server (Mem0-compatible API: "
                           "memories, search, history, entities and batches only)")

    return refuse


def _operation_id(method: str, path: str) -> str:
    words = "".join(ch if ch.isalnum() else "_" for ch in path).strip("_")
    return f"mem0_unsupported_{method.lower()}_{words}"


for _methods, _path, _what in ROUTES:
    for _method in _methods:  # one route per method: OpenAPI operation ids stay unique
        router.add_api_route(_path, _refusal(_what), methods=[_method], status_code=501,
                             operation_id=_operation_id(_method, _path),
                             summary=f"Mem0: {_what} (not supported: 501)",
                             responses=error_responses(501))
