"""``/v1/memories``: add, batch add, search, read, page, update, delete (or erase), history,
and an image memory's picture (``/{id}/image``; image adds and search: ``api/images.py``).

Every route acts for the caller's tenant: user ids go in through ``caller.users.internal`` and
memories come out through ``caller.users.outward``; by-id routes go through ``owned_memory``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from gateway.api.deps import (
    Caller,
    Images,
    MemoryId,
    Service,
    Writer,
    owned_history,
    owned_memory,
)
from gateway.api.errors import COMMON_ERRORS, error_responses
from gateway.api.images import add_images, image_out, search_image
from gateway.api.ingest import (
    DedupPolicyDep,
    IngestDep,
    accepted,
    batch_drafts,
    drafts_of,
    refuse_unconfigured,
    report_out,
    result_out,
)
from gateway.api.schemas import (
    MAX_PAGE_LIMIT,
    AcceptedOut,
    AddedOut,
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
    moment_text,
)
from gateway.auth.principal import Principal
from gateway.auth.scope import TenantScope
from gateway.domain.model import Memory
from gateway.errors import NotFound
from gateway.memory.changes import Keep, MemoryChanges
from gateway.memory.events import IngestRequest
from gateway.memory.ranking import RankingPolicy
from gateway.memory.search import SearchQuery
from gateway.memory.service import MemoryService
from gateway.store.types import ListOrder

router = APIRouter(prefix="/v1/memories", tags=["memories"],
                   responses=error_responses(*COMMON_ERRORS))
_BODY = error_responses(400, 413)  # routes that read a JSON body
_BY_ID = error_responses(404)
_IMAGES = error_responses(409)  # an image without a served CLIP model


def changes_of(body: MemoryPatch) -> MemoryChanges:
    expires = moment_text(body.expires_at) if "expires_at" in body.model_fields_set else Keep.KEEP
    return MemoryChanges(text=body.text, metadata=body.metadata, priority=body.priority,
                         occurred_at=moment_text(body.occurred_at), expires_at=expires)


def _out(memory: Memory, users: TenantScope) -> MemoryOut:
    return MemoryOut.of(users.outward(memory))


_ASYNC: dict[int | str, dict[str, Any]] = {
    202: {"model": AcceptedOut, "description": "async_mode: stored, runs later"}}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AddedOut | BatchOut,
             responses=_BODY | _ASYNC | _IMAGES)
async def add_memory(body: MemoryIn, caller: Writer, policy: DedupPolicyDep,
                     ingest: IngestDep, images: Images) -> AddedOut | BatchOut | Response:
    """Add a text (answered as one memory with its event), an image (the same, with its
    picture's details) or a conversation's messages (answered as a list, like the batch
    route); see docs/api.md for duplicates, ``infer`` and ``async_mode``."""
    if body.image is not None:
        return (await add_images(images, [body], caller.users))[0]
    refuse_unconfigured(ingest, body.infer, ["body"])
    dedup = policy.enabled if body.dedup is None else body.dedup
    drafts = drafts_of(body, caller.users, dedup, ["body"])
    if body.async_mode:
        return accepted(await ingest.submit(IngestRequest([drafts], body.infer)))
    report = await ingest.run(IngestRequest([drafts], body.infer), single=True)
    if body.text is not None and not body.infer:
        return result_out(report.results[0], caller.users)
    return report_out(report, caller.users)


@router.post("/batch", status_code=status.HTTP_201_CREATED, response_model=BatchOut,
             responses=_BODY | _ASYNC | _IMAGES)
async def add_memories(body: BatchIn, caller: Writer, policy: DedupPolicyDep,
                       ingest: IngestDep, images: Images) -> BatchOut | Response:
    if any(item.image is not None for item in body.items):  # a batch of images
        return BatchOut(results=await add_images(images, body.items, caller.users,
                                                 batch=body))
    refuse_unconfigured(ingest, body.infer, ["body"])
    default = policy.enabled if body.dedup is None else body.dedup
    per_item, _, _ = batch_drafts(body, caller.users, default)
    request = IngestRequest(per_item, body.infer)
    if body.async_mode:
        return accepted(await ingest.submit(request))
    return report_out(await ingest.run(request), caller.users)


@router.post("/search", response_model=SearchOut,
             responses=_BODY | error_responses(409))
async def search_memories(body: SearchIn, service: Service, caller: Caller,
                          images: Images) -> SearchOut:
    """Text and image memories in one list (``modality`` on each hit); by text, vector or
    image; see docs/api.md ("Image memories") for how the two spaces are fused."""
    image = None if body.image is None else await asyncio.to_thread(  # base64 off the loop
        search_image, body, images)
    found = await images.search(search_query(body, service, caller), body.modality, image)
    return SearchOut(mode=found.mode, results=[
        SearchHitOut.of_scored(caller.users.outward_scored(s)) for s in found.results])


def search_query(body: SearchIn, service: MemoryService, caller: Principal) -> SearchQuery:
    """The service's query for a validated search request, within the caller's tenant."""
    return SearchQuery(
        user_id=caller.users.internal(body.user_id),
        query=body.query,
        embedding=body.embedding,
        limit=body.limit,
        filters=filters_to_domain(body.filters),
        threshold=body.threshold,
        rerank=body.rerank,
        mode=body.mode,
        ranking=ranking_of(body, service),
        include_expired=body.include_expired,
        include_archived=body.include_archived,
    )


def ranking_of(body: SearchIn, service: MemoryService) -> RankingPolicy:
    """The ranking policy a search runs with: the server's, with the request's overrides."""
    ranking = service.search_policy.ranking
    if body.ranking is not None:
        ranking = ranking.overridden(**body.ranking.model_dump())
    return ranking


@router.get("", response_model=PageOut)
async def list_memories(
    service: Service,
    caller: Caller,
    user_id: Annotated[ScopeId, Query()],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = 100,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    order_by: Annotated[ListOrder, Query()] = "id",
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    include_expired: Annotated[bool, Query()] = False,
    include_archived: Annotated[bool, Query()] = False,
) -> PageOut:
    page, next_cursor = await service.list_page(
        caller.users.internal(user_id), limit, cursor, order_by=order_by,
        descending=order == "desc", include_expired=include_expired,
        include_archived=include_archived)
    return PageOut(results=[_out(m, caller.users) for m in page], next_cursor=next_cursor)


# ``?erase=true``: the right to erasure (docs/operations.md, "Erasure"): no history, no ingest
# event and, after the store's checkpoint, no database page keeps the text.
Erase = Annotated[bool, Query(description="erase: also remove the memories' history and "
                                          "ingest events, leaving no trace of the text")]


@router.delete("", response_model=DeletedOut)
async def delete_user_memories(
    service: Service, caller: Writer, user_id: Annotated[ScopeId, Query()], erase: Erase = False,
) -> DeletedOut:
    internal = caller.users.internal(user_id)
    if erase:
        return DeletedOut(deleted=await service.erase_user(internal))
    return DeletedOut(deleted=await service.delete_user(internal))


@router.get("/{id}", response_model=MemoryOut, responses=_BY_ID)
async def get_memory(memory_id: MemoryId, service: Service, caller: Caller,
                     images: Images) -> MemoryOut:
    memory = await owned_memory(service, caller, memory_id)
    if memory.modality != "image":
        return _out(memory, caller.users)
    return MemoryOut.of(caller.users.outward(memory), await image_out(images, memory.id))


@router.get("/{id}/image", response_class=Response, responses=_BY_ID | {
    200: {"content": {t: {} for t in ("image/png", "image/jpeg", "image/webp")},
          "description": "the picture, re-encoded without metadata"}})
async def get_memory_image(memory_id: MemoryId, service: Service, caller: Caller,
                           images: Images) -> Response:
    """An image memory's picture with its content type; 404 for a text memory."""
    await owned_memory(service, caller, memory_id)
    stored = await images.image(memory_id)
    if stored is None:
        raise NotFound(f"memory {memory_id} has no image")
    return Response(stored.data, media_type=stored.mime,
                    headers={"Cache-Control": "private, max-age=3600",
                             "X-Content-Type-Options": "nosniff"})


@router.patch("/{id}", response_model=MemoryOut,
              responses=_BODY | _BY_ID | error_responses(409))
async def update_memory(memory_id: MemoryId, body: MemoryPatch, service: Service,
                        caller: Writer) -> MemoryOut:
    await owned_memory(service, caller, memory_id)
    return _out(await service.update(memory_id, changes_of(body)), caller.users)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT, responses=_BY_ID)
async def delete_memory(memory_id: MemoryId, service: Service, caller: Writer,
                        erase: Erase = False) -> Response:
    if erase:  # also a memory deleted before: its history is what is left to erase
        try:
            await owned_memory(service, caller, memory_id)
        except NotFound:
            await owned_history(service, caller, memory_id)
        await service.erase(memory_id)
    else:
        await owned_memory(service, caller, memory_id)
        await service.delete(memory_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{id}/history", response_model=HistoryOut, responses=_BY_ID)
async def memory_history(memory_id: MemoryId, service: Service, caller: Caller) -> HistoryOut:
    events = await owned_history(service, caller, memory_id)
    return HistoryOut(results=[HistoryEventOut.of(e) for e in events])
