"""``/v1/admin``: model versions and migrations, for operators (``python -m gateway.models``).

Disabled unless ``MEMORY_ADMIN_ENABLED`` (default on). With authentication on, it answers
admin-scope keys only; with it off, loopback clients only unless
``MEMORY_ADMIN_ALLOW_REMOTE`` is set.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from pydantic import Field

from gateway.api.deps import authenticated, gateway_state
from gateway.api.errors import COMMON_ERRORS, error_responses
from gateway.api.schemas import Request as RequestBody
from gateway.auth.principal import KeyScope, Principal
from gateway.errors import Forbidden, NotFound
from gateway.inference.control import repository_versions
from gateway.memory.migration import EmbedderVersions
from gateway.memory.reranker_versions import RerankerVersions

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


async def guard(request: Request, caller: Annotated[Principal, Depends(authenticated)]
          ) -> EmbedderVersions:
    settings = gateway_state(request).settings
    if not settings.admin_enabled:
        raise NotFound("the admin API is disabled (MEMORY_ADMIN_ENABLED=false)")
    if settings.auth_required:
        if not caller.allows(KeyScope.ADMIN):
            raise Forbidden(f"this API key has scope '{caller.scope.label}'; the admin API "
                            "needs 'admin'")
        return gateway_state(request).versions
    client = request.client.host if request.client else ""
    if not settings.admin_allow_remote and client not in _LOOPBACK:
        raise Forbidden("the admin API answers loopback clients only (authentication is off)")
    return gateway_state(request).versions


Versions = Annotated[EmbedderVersions, Depends(guard)]
router = APIRouter(prefix="/v1/admin", tags=["admin"],
                   responses=error_responses(*COMMON_ERRORS, 400, 404, 409))


class ActivateIn(RequestBody):
    version: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}$")]


async def _embedder_view(versions: EmbedderVersions) -> dict[str, Any]:
    state = await versions.versions.model_state(versions.model)
    served = await versions.control.served_versions(versions.model)
    if versions.status.state in ("running", "stalled", "switching"):
        done, total = await versions.versions.migration_progress()
        versions.status.done, versions.status.total = done, total
    return {
        "active": state.active if state else None,
        "target": state.target if state else None,
        "served": served,
        "repository": repository_versions(versions.repository, versions.model),
        "migration": asdict(versions.status),
    }


async def _reranker_view(request: Request, versions: EmbedderVersions) -> dict[str, Any]:
    rerankers: RerankerVersions = gateway_state(request).reranker_versions
    state = await versions.versions.model_state(rerankers.model)
    return {
        "active": state.active if state else None,
        "served": await versions.control.served_versions(rerankers.model),
        "repository": repository_versions(rerankers.repository, rerankers.model),
    }


@router.get("/models")
async def list_models(request: Request, versions: Versions) -> dict[str, Any]:
    """Repository versions, which ones Triton serves, which is active, migration progress."""
    return {versions.model: await _embedder_view(versions),
            gateway_state(request).reranker_versions.model: await _reranker_view(request, versions)}


@router.post("/models/reranker/activate")
async def activate_reranker(body: ActivateIn, request: Request,
                            versions: Versions) -> dict[str, Any]:
    """Load ``version``, switch to it and unload the old one (scores are not stored: no
    migration)."""
    await gateway_state(request).reranker_versions.activate(body.version)
    return await _reranker_view(request, versions)


@router.get("/models/embedder/migration")
async def migration_status(versions: Versions) -> dict[str, Any]:
    return (await _embedder_view(versions))["migration"]


@router.post("/models/embedder/activate", status_code=status.HTTP_202_ACCEPTED)
async def activate_embedder(body: ActivateIn, versions: Versions) -> dict[str, Any]:
    """Start re-embedding every memory with ``version``; the switch happens when it is done."""
    await versions.activate(body.version)
    return (await _embedder_view(versions))["migration"]


@router.post("/models/embedder/abandon")
async def abandon_migration(versions: Versions) -> dict[str, Any]:
    """Roll a migration back: the active version stays, the re-embedded vectors are dropped."""
    await versions.abandon()
    return (await _embedder_view(versions))["migration"]
