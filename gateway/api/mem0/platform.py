"""Mem0 platform routes around the memories: the ping handshake and the entities.

Entities are the users, agents, apps and runs that have memories in the caller's tenant;
deleting one deletes its memories.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway.api.deps import requires
from gateway.api.errors import ErrorOut
from gateway.api.mem0 import query
from gateway.api.mem0.deps import Reader, Writer
from gateway.api.mem0.entities import ENTITY_TYPES, check_entity_id
from gateway.api.mem0.schemas import APP_KEY
from gateway.auth.principal import KeyScope, Principal
from gateway.errors import InvalidInput

router = APIRouter(tags=["mem0"])
PROJECT_ID = "default"  # one project per tenant


async def _ping(caller: Principal) -> dict[str, Any]:
    """The client's handshake: it needs non-empty ``org_id`` and ``project_id`` strings."""
    return {"status": "ok", "org_id": caller.tenant, "project_id": PROJECT_ID,
            "user_email": None}


Pinger = Annotated[Principal, Depends(requires(KeyScope.READ))]


@router.get("/v1/ping/", summary="Mem0: handshake")
async def ping(caller: Pinger) -> dict[str, Any]:
    return await _ping(caller)


# AsyncMemoryClient builds the ping URL by concatenation: a host ending in "/" asks for this.
@router.get("//v1/ping/", include_in_schema=False)
async def ping_double_slash(caller: Pinger) -> dict[str, Any]:
    return await _ping(caller)


@router.get("/v1/entities/", summary="Mem0: users, agents, apps and runs with memories")
async def entities(finder: Reader) -> dict[str, Any]:
    counts: Counter[tuple[str, str]] = Counter()
    prefix, without = finder.parts.stored_range()
    for group in await finder.service.store.populations(APP_KEY, prefix, without):
        if not finder.parts.owns(group.user_id):
            continue
        user = finder.parts.user_of(group.user_id)
        named = (("user", user), ("agent", group.agent_id), ("run", group.run_id),
                 ("app", group.tag if isinstance(group.tag, str) else None))
        for kind, name in named:
            if name:
                counts[(kind, name)] += group.memories
    results = [{"id": name, "name": name, "type": kind, "total_memories": total}
               for (kind, name), total in sorted(counts.items(), key=lambda item: (
                   ENTITY_TYPES.index(item[0][0]), item[0][1]))]
    return {"count": len(results), "results": results}


@router.delete("/v2/entities/{entity_type}/{entity_name:path}/",
               summary="Mem0: delete an entity's memories",
               # a name with a line break does not match the path: the router answers 404
               responses={404: {"model": ErrorOut, "description": "No such route"}})
async def delete_entity(entity_type: str, entity_name: str, finder: Writer) -> dict[str, Any]:
    if entity_type not in ENTITY_TYPES:
        raise InvalidInput(f"entity type must be one of {', '.join(ENTITY_TYPES)}")
    name = check_entity_id(entity_name, f"{entity_type}_id")
    # Idempotent: reset() deletes every listed entity in turn, and deleting a user may already
    # have taken the memories an agent listed next had with that user.
    deleted = await finder.delete_matching(query.tree({f"{entity_type}_id": name}, []))
    return {"message": "Entity deleted successfully!", "deleted": deleted}
