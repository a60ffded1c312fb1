"""``/v1/memories``: add, batch add, search, read, page, update, delete, history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from gateway.api.deps import MemoryId, Service
from gateway.api.schemas import (
    MAX_PAGE_LIMIT,
    BatchIn,
    BatchOut,
    DeletedOut,
    HistoryEventOut,
    HistoryOut,
    MemoryIn,
    MemoryOut,
    MemoryPatch,
    PageOut,
    ScopeId,
    SearchHitOut,
    SearchIn,
    SearchOut,
    filters_to_domain,
)
from gateway.memory.service import MemoryChanges, NewMemory

router = APIRouter(prefix="/v1/memories", tags=["memories"])


def _draft(item: MemoryIn) -> NewMemory:
    return NewMemory(**item.model_dump())


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MemoryOut)
async def add_memory(body: MemoryIn, service: Service) -> MemoryOut:
    [memory] = await service.add_many([_draft(body)], field="body")
    return MemoryOut.of(memory)


@router.post("/batch", status_code=status.HTTP_201_CREATED, response_model=BatchOut)
async def add_memories(body: BatchIn, service: Service) -> BatchOut:
    memories = await service.add_many([_draft(item) for item in body.items])
    return BatchOut(results=[MemoryOut.of(m) for m in memories])


@router.post("/search", response_model=SearchOut)
async def search_memories(body: SearchIn, service: Service) -> SearchOut:
    found = await service.search(
        body.user_id,
        query=body.query,
        embedding=body.embedding,
        limit=body.limit,
        filters=filters_to_domain(body.filters),
        threshold=body.threshold,
        rerank=body.rerank,
    )
    return SearchOut(results=[SearchHitOut.of_scored(s) for s in found])


@router.get("", response_model=PageOut)
async def list_memories(
    service: Service,
    user_id: Annotated[ScopeId, Query()],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
) -> PageOut:
    page, next_cursor = await service.list_page(user_id, limit, cursor)
    return PageOut(results=[MemoryOut.of(m) for m in page], next_cursor=next_cursor)


@router.delete("", response_model=DeletedOut)
async def delete_user_memories(
    service: Service, user_id: Annotated[ScopeId, Query()]
) -> DeletedOut:
    return DeletedOut(deleted=await service.delete_user(user_id))


@router.get("/{id}", response_model=MemoryOut)
async def get_memory(memory_id: MemoryId, service: Service) -> MemoryOut:
    return MemoryOut.of(await service.get(memory_id))


@router.patch("/{id}", response_model=MemoryOut)
async def update_memory(memory_id: MemoryId, body: MemoryPatch, service: Service) -> MemoryOut:
    changes = MemoryChanges(text=body.text, metadata=body.metadata, priority=body.priority)
    return MemoryOut.of(await service.update(memory_id, changes))


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_memory(memory_id: MemoryId, service: Service) -> Response:
    await service.delete(memory_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{id}/history", response_model=HistoryOut)
async def memory_history(memory_id: MemoryId, service: Service) -> HistoryOut:
    events = await service.history(memory_id)
    return HistoryOut(results=[HistoryEventOut.of(e) for e in events])
