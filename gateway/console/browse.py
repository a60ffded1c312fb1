"""Read pages: the tenant's users, a user's memories page by page (by agent and run too), and
one memory with its history and archive links. Any key of the tenant may read."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from gateway.api.deps import get_service, not_found, owned_history, owned_memory
from gateway.api.deps import memory_id as canonical_id
from gateway.api.schemas import MAX_PAGE_LIMIT
from gateway.console.auth import Reader
from gateway.console.forms import optional_id, scope_id
from gateway.console.render import PREFIX, page
from gateway.console.routing import ConsoleRoute
from gateway.domain.model import HistoryEvent, Memory
from gateway.errors import NotFound
from gateway.memory.cursors import encode_cursor
from gateway.memory.service import MemoryService

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)
PAGE_SIZES = (20, 50, 100)
SCAN_PAGE = 1_000  # memories read per store call when an agent or run filter is given
MAX_SCANNED = 20_000  # memories one filtered page reads at most (then: "continue")
USERS_PER_PAGE = 50


@router.get("/")
async def users(request: Request, caller: Reader,
                after: Annotated[str, Query(max_length=200)] = "",
                done: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    """The tenant's users in id order, ``USERS_PER_PAGE`` at a time, with their memory
    counts: index seeks only, whatever the users hold (agents and runs are filters of the
    memories page, whose rows name them)."""
    store = (await get_service(request)).store
    within = caller.users.user_range
    cursor = caller.users.internal(scope_id(after, "after")) if after else within.prefix
    found: list[str] = []
    while len(found) < USERS_PER_PAGE:
        user = await store.next_user(cursor, within)
        if user is None or not caller.users.owns(user):
            break
        found.append(user)
        cursor = user
    counts = await store.user_counts(found)
    rows = [{"user_id": caller.users.public(u), "memories": counts.get(u, 0)} for u in found]
    more = rows[-1]["user_id"] if len(rows) == USERS_PER_PAGE else None
    return page(request, "users.html", {"rows": rows, "after": after, "more": more,
                                        "done": done})


async def filtered_page(service: MemoryService, user: str, limit: int, cursor: str | None, *,
                        descending: bool, archived: bool, expired: bool, agent: str | None,
                        run: str | None) -> tuple[list[Memory], str | None]:
    """A page of the user's memories with the given agent and run (the API's keyset pages,
    read ``SCAN_PAGE`` at a time and filtered; at most ``MAX_SCANNED`` per page)."""
    if agent is None and run is None:
        return await service.list_page(user, limit, cursor, descending=descending,
                                       include_expired=expired, include_archived=archived)
    found: list[Memory] = []
    scanned = 0
    while True:
        rows, after = await service.list_page(user, SCAN_PAGE, cursor, descending=descending,
                                              include_expired=expired,
                                              include_archived=archived)
        for memory in rows:
            if (agent is None or memory.agent_id == agent) and (run is None
                                                                 or memory.run_id == run):
                found.append(memory)
                if len(found) == limit:
                    return found, encode_cursor(memory.id)
        scanned += len(rows)
        if after is None or scanned >= MAX_SCANNED:
            return found, after
        cursor = after


@router.get("/memories")
async def memories(
    request: Request, caller: Reader,
    user_id: Annotated[str | None, Query(max_length=200)] = None,
    agent_id: Annotated[str | None, Query(max_length=200)] = None,
    run_id: Annotated[str | None, Query(max_length=200)] = None,
    order: Annotated[str, Query(pattern="^(newest|oldest)$")] = "newest",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=256)] = None,
    archived: bool = False, expired: bool = False,
    done: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    if not user_id:
        return page(request, "memories.html", {"user_id": "", "rows": [], "params": {},
                                               "next_cursor": None, "done": done,
                                               "page_sizes": PAGE_SIZES})
    user = scope_id(user_id, "user_id")
    agent, run = optional_id(agent_id, "agent_id"), optional_id(run_id, "run_id")
    service = await get_service(request)
    rows, next_cursor = await filtered_page(
        service, caller.users.internal(user), min(limit, max(PAGE_SIZES)), cursor,
        descending=order == "newest", archived=archived, expired=expired, agent=agent, run=run)
    params = {"user_id": user, "agent_id": agent or "", "run_id": run or "", "order": order,
              "limit": limit, "archived": archived, "expired": expired}
    return page(request, "memories.html", {
        "user_id": user, "rows": [caller.users.outward(m) for m in rows], "params": params,
        "next_cursor": next_cursor, "done": done, "page_sizes": PAGE_SIZES})


@router.get("/memories/{memory_id}")
async def memory(request: Request, memory_id: str, caller: Reader) -> Response:
    """A memory (or what is left of a deleted one: its history), its summary or sources."""
    memory_id = await canonical_id(memory_id)
    service = await get_service(request)
    found: Memory | None
    try:
        found = caller.users.outward(await owned_memory(service, caller, memory_id))
    except NotFound:
        found = None
    try:
        events: list[HistoryEvent] = await owned_history(service, caller, memory_id)
    except NotFound:
        if found is None:
            raise not_found(memory_id) from None
        events = []
    return page(request, "memory.html", {"memory": found, "memory_id": memory_id,
                                         "events": events,
                                         "user_id": caller.users.public(events[0].user_id)
                                         if events else (found.user_id if found else "")})
