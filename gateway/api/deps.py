"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.errors import InvalidInput
from gateway.memory.ids import parse_id
from gateway.memory.service import MemoryService


def get_service(request: Request) -> MemoryService:
    return request.app.state.service


def memory_id(id: str) -> str:
    """The path id in canonical form; a malformed one is a 422 naming the field."""
    parsed = parse_id(id)
    if parsed is None:
        raise InvalidInput([{"loc": ["path", "id"], "msg": "must be a UUID", "type": "uuid"}])
    return parsed


Service = Annotated[MemoryService, Depends(get_service)]
MemoryId = Annotated[str, Depends(memory_id)]
