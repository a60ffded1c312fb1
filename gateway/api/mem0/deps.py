"""The Mem0 routes' dependencies: the caller's ``Finder`` (read or write scope) and ids."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from gateway.api.deps import Service, requires
from gateway.api.mem0.entities import Partitions
from gateway.api.mem0.finder import Finder
from gateway.auth.principal import KeyScope, Principal
from gateway.errors import InvalidInput
from gateway.memory.ids import parse_id


async def _reader(service: Service,
            caller: Annotated[Principal, Depends(requires(KeyScope.READ))]) -> Finder:
    return Finder(service, Partitions(caller.users))


async def _writer(service: Service,
            caller: Annotated[Principal, Depends(requires(KeyScope.WRITE))]) -> Finder:
    return Finder(service, Partitions(caller.users))


def mem0_memory_id(memory_id: str) -> str:
    """A memory id in canonical form (Mem0 ids are UUIDs too); 422 otherwise."""
    parsed = parse_id(memory_id)
    if parsed is None:
        raise InvalidInput(f"memory_id must be a UUID, got {memory_id[:64]!r}")
    return parsed


Reader = Annotated[Finder, Depends(_reader)]
Writer = Annotated[Finder, Depends(_writer)]
Mem0MemoryId = Annotated[str, Depends(mem0_memory_id)]
