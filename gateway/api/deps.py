"""Dependencies shared by the routers: the gateway's state, path ids, and the caller.

The caller was resolved from its API key by ``gateway.auth.middleware`` (before admission);
these dependencies only demand one and check its scope. Routes translate user ids through
``caller.users`` (a ``TenantScope``) and fetch memories by id through ``owned_memory``, so a
memory of another tenant is indistinguishable from a missing one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from gateway.auth.authenticator import MISSING
from gateway.auth.principal import KeyScope, Principal
from gateway.domain.model import HistoryEvent, Memory
from gateway.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from gateway.memory.ids import parse_id
from gateway.memory.image_memories import ImageMemories
from gateway.memory.service import MemoryService
from gateway.state import GatewayState

# Declared so /openapi.json and /docs show how to authenticate; the middleware did the work
# (``Token <key>`` is accepted too, which OpenAPI's bearer scheme cannot express).
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key> (or Token)")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def gateway_state(request: Request) -> GatewayState:
    """The started gateway's parts (built by ``gateway.startup``)."""
    state: GatewayState = request.app.state.gateway
    return state


async def get_service(request: Request) -> MemoryService:
    return gateway_state(request).service


async def get_images(request: Request) -> ImageMemories:
    return gateway_state(request).images


async def memory_id(id: str) -> str:
    """The path id in canonical form; a malformed one is a 422 naming the field."""
    parsed = parse_id(id)
    if parsed is None:
        raise InvalidInput([{"loc": ["path", "id"], "msg": "must be a UUID", "type": "uuid"}])
    return parsed


async def authenticated(request: Request, _bearer: Annotated[object, Security(_bearer)],
                  _key: Annotated[object, Security(_api_key)]) -> Principal:
    principal = request.scope.get("auth")
    if not isinstance(principal, Principal):
        raise Unauthorized(MISSING)
    return principal


def demand(principal: Principal, needed: KeyScope) -> Principal:
    """The caller, if its key's scope includes ``needed`` (else 403): the one scope check of
    the API and the web console."""
    if not principal.allows(needed):
        raise Forbidden(f"this API key has scope '{principal.scope.label}'; "
                        f"this call needs '{needed.label}'")
    return principal


def requires(needed: KeyScope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the caller, if its key's scope includes ``needed`` (else 403)."""

    async def check(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        return demand(principal, needed)

    return check


def not_found(memory_id: str) -> NotFound:
    """The one answer for a missing memory and another tenant's memory."""
    return NotFound(f"memory {memory_id} not found")


async def owned_memory(service: MemoryService, caller: Principal, memory_id: str) -> Memory:
    """The memory with this id if it belongs to the caller's tenant (internal user id)."""
    try:
        memory = await service.get(memory_id)
    except NotFound:
        raise not_found(memory_id) from None
    if not caller.users.owns(memory.user_id):
        raise not_found(memory_id)
    return memory


async def owned_history(service: MemoryService, caller: Principal,
                        memory_id: str) -> list[HistoryEvent]:
    """A memory's history (also after its deletion) if it belongs to the caller's tenant."""
    try:
        events = await service.history(memory_id)
    except NotFound:
        raise not_found(memory_id) from None
    if not events or not caller.users.owns(events[0].user_id):
        raise not_found(memory_id)
    return events


State = Annotated[GatewayState, Depends(gateway_state)]
Service = Annotated[MemoryService, Depends(get_service)]
Images = Annotated[ImageMemories, Depends(get_images)]
MemoryId = Annotated[str, Depends(memory_id)]
Caller = Annotated[Principal, Depends(requires(KeyScope.READ))]  # any valid key
Writer = Annotated[Principal, Depends(requires(KeyScope.WRITE))]
AdminCaller = Annotated[Principal, Depends(requires(KeyScope.ADMIN))]  # its tenant only
Operator = Annotated[Principal, Depends(requires(KeyScope.OPERATOR))]  # the whole service
