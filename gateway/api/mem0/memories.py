"""Mem0 memory routes: add (and its event), search, list, get, update, delete, history,
delete-all, batches.

Each handler translates the Mem0 request into service calls through the caller's ``Finder``
and the answer back into Mem0's shapes; ``memory`` is our ``text``, ``top_k`` our ``limit``.
Adds take the service's ingest path (``adds.py``).
Paths end with ``/`` exactly as the client sends them (it does not follow redirects).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from gateway.api.errors import error_responses
from gateway.api.ingest import DedupPolicyDep, IngestDep
from gateway.api.mem0 import adds, query
from gateway.api.mem0.bounded import QueryRoute
from gateway.api.mem0.deps import Mem0MemoryId, Reader, Writer, mem0_memory_id
from gateway.api.mem0.finder import Finder
from gateway.api.mem0.schemas import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    RESERVED_PREFIX,
    AddIn,
    BatchDeleteIn,
    BatchUpdateIn,
    ListIn,
    SearchIn,
    UpdateIn,
)
from gateway.api.mem0.views import history_out, memory_out
from gateway.errors import InvalidInput, NotFound
from gateway.memory.changes import Keep, MemoryChanges
from gateway.memory.dedup import DedupPolicy
from gateway.memory.events import Ingest, IngestRequest
from gateway.memory.ids import parse_id
from gateway.memory.search import SearchMode

router = APIRouter(tags=["mem0"], responses=error_responses(400, 404, 409, 413))
# search and list: bodies past bounded.MAX_QUERY_BODY_BYTES are a 413, never decoded
query_router = APIRouter(tags=["mem0"], responses=error_responses(400, 404, 409, 413),
                         route_class=QueryRoute)
Json = dict[str, Any]


async def _add(body: AddIn, finder: Finder, ingest: Ingest, policy: DedupPolicy) -> Json:
    request = IngestRequest([adds.drafts_of(body, finder.parts, policy.enabled)],
                            adds.wants_inference(body, ingest))
    if body.async_mode:
        return adds.queued_out(await ingest.submit(request))
    return adds.added_out(await ingest.run(request, single=True), str(uuid.uuid4()))


@router.post("/v3/memories/add/", summary="Mem0: add memories")
async def add_v3(body: AddIn, finder: Writer, ingest: IngestDep,
                 policy: DedupPolicyDep) -> Json:
    return await _add(body, finder, ingest, policy)


@router.post("/v1/memories/", summary="Mem0 (mem0ai 1.0.x): add memories")
async def add_v1(body: AddIn, finder: Writer, ingest: IngestDep,
                 policy: DedupPolicyDep) -> Json:
    return await _add(body, finder, ingest, policy)


@router.get("/v1/event/{event_id}/", summary="Mem0: the status of an async add")
async def get_event(event_id: str, finder: Reader, ingest: IngestDep) -> Json:
    parsed = parse_id(event_id)
    found = await ingest.events.get_event(parsed) if parsed is not None else None
    if found is None or not finder.parts.owns(found.user_id):
        raise NotFound(f"event {event_id[:64]} not found")
    return adds.event_out(found)


def _mode(keyword_search: bool | None) -> SearchMode | None:
    """Mem0's ``keyword_search`` adds keyword matching to semantic search: our hybrid mode;
    ``false`` asks for semantic only; absent leaves the server's default mode."""
    if keyword_search is None:
        return None
    return "hybrid" if keyword_search else "semantic"


async def _search(body: SearchIn, finder: Finder) -> Json:
    extra = query.entity_conditions(body)
    if body.categories:
        extra.append({"categories": {"in": body.categories}})
    if body.metadata:
        extra.append({"metadata": body.metadata})
    node = query.tree(body.filters, extra)
    hits = await finder.search(
        node, query=body.query, top_k=body.limit or body.top_k, threshold=body.threshold,
        rerank=body.rerank, mode=_mode(body.keyword_search),
        include_expired=bool(body.show_expired),
    )
    return {"results": [memory_out(h.memory, finder.parts, score=h.score, fields=body.fields)
                        for h in hits]}


@query_router.post("/v3/memories/search/", summary="Mem0: search memories")
async def search_v3(body: SearchIn, finder: Reader) -> Json:
    return await _search(body, finder)


@query_router.post("/v2/memories/search/", summary="Mem0 (mem0ai 1.0.x): search memories")
async def search_v2(body: SearchIn, finder: Reader) -> Json:
    return await _search(body, finder)


async def _list(request: Request, body: ListIn, finder: Finder, page: int | None,
                page_size: int | None) -> Json:
    extra = query.entity_conditions(body)
    if body.categories:
        extra.append({"categories": {"in": body.categories}})
    if body.start_date:
        extra.append({"created_at": {"gte": body.start_date}})
    if body.end_date:
        extra.append({"created_at": {"lte": body.end_date}})
    node = query.tree(body.filters, extra)
    found = await finder.matching(node, include_expired=bool(body.show_expired))
    page, size = page or 1, page_size or DEFAULT_PAGE_SIZE
    start = (page - 1) * size
    url = request.url
    return {
        "count": len(found),
        "next": str(url.include_query_params(page=page + 1, page_size=size))
        if start + size < len(found) else None,
        "previous": str(url.include_query_params(page=page - 1, page_size=size))
        if page > 1 else None,
        "results": [memory_out(m, finder.parts, fields=body.fields)
                    for m in found[start:start + size]],
    }


Page = Annotated[int | None, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)]


@query_router.post("/v3/memories/", summary="Mem0: list memories (paged)")
async def list_v3(request: Request, body: ListIn, finder: Reader, page: Page = None,
                  page_size: PageSize = None) -> Json:
    return await _list(request, body, finder, page, page_size)


@query_router.post("/v2/memories/", summary="Mem0 (mem0ai 1.0.x): list memories (paged)")
async def list_v2(request: Request, body: ListIn, finder: Reader, page: Page = None,
                  page_size: PageSize = None) -> Json:
    return await _list(request, body, finder, page, page_size)


@router.get("/v1/memories/{memory_id}/", summary="Mem0: one memory")
async def get_memory(memory_id: Mem0MemoryId, finder: Reader) -> Json:
    return memory_out(await finder.owned(memory_id), finder.parts)


@router.put("/v1/memories/{memory_id}/", summary="Mem0: update a memory")
async def update_memory(memory_id: Mem0MemoryId, body: UpdateIn, finder: Writer) -> Json:
    given = body.model_fields_set - {"org_id", "project_id"}
    if not given:
        raise InvalidInput("give at least one of text, metadata, timestamp, expiration_date")
    previous = await finder.owned(memory_id)
    metadata = None
    if body.metadata is not None:  # keep the Mem0 attributes that ride in metadata
        kept = {k: v for k, v in previous.metadata.items() if k.startswith(RESERVED_PREFIX)}
        metadata = {**adds.metadata_of(body.metadata), **kept}
    changes = MemoryChanges(
        text=body.text, metadata=metadata, occurred_at=adds.occurred_at(body.timestamp),
        expires_at=adds.expires_at(body.expiration_date) if "expiration_date" in given
        else Keep.KEEP,  # an explicit null clears it
    )
    updated = await finder.service.update(memory_id, changes)
    return {"message": "Memory updated successfully!", **memory_out(updated, finder.parts)}


@router.delete("/v1/memories/{memory_id}/", summary="Mem0: delete a memory")
async def delete_memory(memory_id: Mem0MemoryId, finder: Writer,
                        delete_linked: bool = False, erase: bool = False) -> Json:
    """``erase=true`` (an extension): the right to erasure, as ``DELETE /v1/memories/{id}``
    with ``erase``; also of a memory deleted before."""
    if erase:
        try:
            await finder.owned(memory_id)
        except NotFound:
            await finder.owned_history(memory_id)
        await finder.service.erase(memory_id)
        return {"message": "Memory erased successfully!"}
    await finder.owned(memory_id)
    await finder.service.delete(memory_id)  # no linked chains here: delete_linked is moot
    return {"message": "Memory deleted successfully!"}


@router.get("/v1/memories/{memory_id}/history/", summary="Mem0: a memory's history")
async def memory_history(memory_id: Mem0MemoryId, finder: Reader) -> list[Json]:
    events = await finder.owned_history(memory_id)
    return [history_out(e, memory_id, finder.parts) for e in events]


@router.delete("/v1/memories/", summary="Mem0: delete the memories a filter matches")
async def delete_all(request: Request, finder: Writer) -> Json:
    """Every argument comes in the query string; ``filters`` and ``metadata`` as dicts in
    JSON or in the Python ``repr`` the mem0ai client writes."""
    params = request.query_params
    extra: list[dict[str, Any]] = [{name: params[name]} for name in
                                   ("user_id", "agent_id", "app_id", "run_id") if name in params]
    raw_filters = query.query_dict(params["filters"], "filters") if "filters" in params else None
    if "metadata" in params:
        extra.append({"metadata": query.query_dict(params["metadata"], "metadata")})
    deleted = await finder.delete_matching(query.tree(raw_filters, extra))
    return {"message": "Memories deleted successfully!", "deleted": deleted}


@router.put("/v1/batch/", summary="Mem0: update up to 1000 memories")
async def batch_update(body: BatchUpdateIn, finder: Writer) -> Json:
    """Every id is checked (and every metadata) before the first change: all or nothing."""
    changes = []
    for item in body.memories:
        memory_id = mem0_memory_id(item.memory_id)
        before = await finder.owned(memory_id)
        metadata = None
        if item.metadata is not None:
            kept = {k: v for k, v in before.metadata.items() if k.startswith(RESERVED_PREFIX)}
            metadata = {**adds.metadata_of(item.metadata), **kept}
        changes.append((memory_id, MemoryChanges(text=item.text, metadata=metadata)))
    for memory_id, change in changes:
        await finder.service.update(memory_id, change)
    return {"message": f"Successfully updated {len(changes)} memories"}


@router.delete("/v1/batch/", summary="Mem0: delete up to 1000 memories")
async def batch_delete(body: BatchDeleteIn, finder: Writer) -> Json:
    ids = list(dict.fromkeys(mem0_memory_id(item.memory_id) for item in body.memories))
    for memory_id in ids:  # all exist, or nothing is deleted
        await finder.owned(memory_id)
    for memory_id in ids:
        await finder.service.delete(memory_id)
    return {"message": f"Successfully deleted {len(ids)} memories"}
