"""``/v1/admin``: model versions and migrations, for operators (``python -m gateway.models``).

Disabled unless ``MEMORY_ADMIN_ENABLED`` (default on). Model versions are the whole
service's, so with authentication on it answers operator-scope keys only (a tenant's admin
key gets 403); with it off, loopback clients only unless ``MEMORY_ADMIN_ALLOW_REMOTE`` is set.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, status
from pydantic import Field

from gateway.api.deps import authenticated, gateway_state
from gateway.api.errors import COMMON_ERRORS, error_responses
from gateway.api.schemas import Request as RequestBody
from gateway.auth.principal import KeyScope, Principal
from gateway.errors import Forbidden, NotFound
from gateway.settings import Settings
from gateway.versions.activation import EmbedderVersions
from gateway.versions.clip import ClipVersions
from gateway.versions.rerankers import RerankerVersions

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "testclient"}


async def guard(request: Request, caller: Annotated[Principal, Depends(authenticated)]
          ) -> EmbedderVersions:
    client = request.client.host if request.client else ""
    check_admin(gateway_state(request).settings, caller, client)
    return gateway_state(request).versions


def check_admin(settings: Settings, caller: Principal, client_host: str) -> None:
    """Refuse a caller the admin API (model versions) does not answer: the API's and the web
    console's one rule."""
    if not settings.admin_enabled:
        raise NotFound("the admin API is disabled (MEMORY_ADMIN_ENABLED=false)")
    if settings.auth_required:
        if not caller.allows(KeyScope.OPERATOR):
            raise Forbidden(f"this API key has scope '{caller.scope.label}'; the admin API "
                            "(model versions, for the whole service) needs 'operator'")
        return
    if not settings.admin_allow_remote and client_host not in _LOOPBACK:
        raise Forbidden("the admin API answers loopback clients only (authentication is off)")


Versions = Annotated[EmbedderVersions, Depends(guard)]
router = APIRouter(prefix="/v1/admin", tags=["admin"],
                   responses=error_responses(*COMMON_ERRORS, 400, 404, 409))


class ActivateIn(RequestBody):
    version: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,8}$")]


@router.get("/models")
async def list_models(request: Request, versions: Versions) -> dict[str, Any]:
    """Repository versions, which ones Triton serves, which is active, migration progress."""
    rerankers: RerankerVersions = gateway_state(request).reranker_versions
    clip: ClipVersions = gateway_state(request).clip_versions
    return {versions.model: await versions.view(), rerankers.model: await rerankers.view(),
            clip.model: await clip.view()}


@router.post("/models/reranker/activate")
async def activate_reranker(body: ActivateIn, request: Request,
                            versions: Versions) -> dict[str, Any]:
    """Load ``version``, switch to it and unload the old one (scores are not stored: no
    migration)."""
    rerankers: RerankerVersions = gateway_state(request).reranker_versions
    await rerankers.activate(body.version)
    return await rerankers.view()


@router.get("/models/embedder/migration")
async def migration_status(versions: Versions) -> dict[str, Any]:
    return (await versions.view())["migration"]


@router.post("/models/embedder/activate", status_code=status.HTTP_202_ACCEPTED)
async def activate_embedder(body: ActivateIn, versions: Versions) -> dict[str, Any]:
    """Start re-embedding every memory with ``version``; the switch happens when it is done."""
    await versions.activate(body.version)
    return (await versions.view())["migration"]


@router.post("/models/embedder/abandon")
async def abandon_migration(versions: Versions) -> dict[str, Any]:
    """Roll a migration back: the active version stays, the re-embedded vectors are dropped."""
    await versions.abandon()
    return (await versions.view())["migration"]


@router.get("/models/clip/migration")
async def clip_migration_status(request: Request, versions: Versions) -> dict[str, Any]:
    clip: ClipVersions = gateway_state(request).clip_versions
    return (await clip.view())["migration"]


@router.post("/models/clip/activate", status_code=status.HTTP_202_ACCEPTED)
async def activate_clip(body: ActivateIn, request: Request, versions: Versions) -> dict[str, Any]:
    """Start re-embedding every stored picture with CLIP ``version``; the switch happens when
    it is done (searches use the active version until then)."""
    clip: ClipVersions = gateway_state(request).clip_versions
    await clip.activate(body.version)
    return (await clip.view())["migration"]


@router.post("/models/clip/abandon")
async def abandon_clip_migration(request: Request, versions: Versions) -> dict[str, Any]:
    """Roll a CLIP migration back: the active version stays, the new vectors are dropped."""
    clip: ClipVersions = gateway_state(request).clip_versions
    await clip.abandon()
    return (await clip.view())["migration"]
