"""Write pages: edit a memory, delete it, erase a user; each behind a confirmation page and a
POST with the session's CSRF token, each through the API's own checks (``gateway.api``): a
read key is refused (403) exactly as on the API, another tenant's memory is not found."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from gateway.api.deps import get_service, owned_memory
from gateway.api.deps import memory_id as canonical_id
from gateway.api.memories import changes_of
from gateway.api.schemas import MemoryPatch
from gateway.console.admitted import admitted
from gateway.console.auth import Form, Reader, Writer
from gateway.console.forms import int_field, scope_id, text_field
from gateway.console.render import PREFIX, page
from gateway.console.routing import ConsoleRoute
from gateway.errors import InvalidInput

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)


def _to(path: str, **query: str) -> RedirectResponse:
    """Post, then redirect (303): a reload never repeats the change."""
    suffix = f"?{urlencode(query)}" if query else ""
    return RedirectResponse(f"{PREFIX}{path}{suffix}", status_code=303)


@router.get("/memories/{memory_id}/edit")
async def edit_form(request: Request, memory_id: str, caller: Reader) -> Response:
    memory_id = await canonical_id(memory_id)
    found = await owned_memory(await get_service(request), caller, memory_id)
    return page(request, "edit.html", {"memory": caller.users.outward(found),
                                       "metadata": json.dumps(found.metadata, indent=2,
                                                              ensure_ascii=False)})


def patch_of(form: dict[str, str | None], current_text: str, current_priority: int,
             current_metadata: dict[str, object]) -> MemoryPatch:
    """The API's patch with the fields the form changed (422 when nothing changed)."""
    changed: dict[str, object] = {}
    text = form.get("text")
    if text is not None and text != current_text:
        changed["text"] = text
    if form.get("priority") not in (None, ""):
        priority = int_field(form["priority"], "priority")
        if priority != current_priority:
            changed["priority"] = priority
    raw = (form.get("metadata") or "").strip()
    if raw:
        try:
            metadata = json.loads(raw)
        except ValueError:
            raise InvalidInput.at(("metadata",), "must be a JSON object") from None
        if metadata != current_metadata:
            changed["metadata"] = metadata
    if not changed:
        raise InvalidInput("nothing changed: edit the text, the priority or the metadata")
    return MemoryPatch.model_validate(changed)


@router.post("/memories/{memory_id}/edit")
async def edit(request: Request, memory_id: str, caller: Writer, form: Form) -> Response:
    memory_id = await canonical_id(memory_id)
    service = await get_service(request)
    found = await owned_memory(service, caller, memory_id)
    fields = {name: text_field(form, name) for name in ("text", "priority", "metadata")}
    patch = patch_of(fields, found.text, found.priority, found.metadata)
    async with admitted(request, caller, "ingest"):  # it may re-embed, as a PATCH
        await service.update(memory_id, changes_of(patch))
    return _to(f"/memories/{memory_id}", done="saved")


@router.get("/memories/{memory_id}/delete")
async def delete_form(request: Request, memory_id: str, caller: Reader) -> Response:
    memory_id = await canonical_id(memory_id)
    found = await owned_memory(await get_service(request), caller, memory_id)
    return page(request, "delete.html", {"memory": caller.users.outward(found)})


@router.post("/memories/{memory_id}/delete")
async def delete(request: Request, memory_id: str, caller: Writer, form: Form) -> Response:
    memory_id = await canonical_id(memory_id)
    service = await get_service(request)
    found = await owned_memory(service, caller, memory_id)
    async with admitted(request, caller, "admin"):
        await service.delete(memory_id)
    return _to("/memories", user_id=caller.users.public(found.user_id),
               done=f"deleted memory {memory_id}")


@router.get("/users/erase")
async def erase_form(request: Request, caller: Reader,
                     user_id: Annotated[str, Query(max_length=200)]) -> Response:
    user = scope_id(user_id, "user_id")
    return page(request, "erase.html", {"user_id": user})


@router.post("/users/erase")
async def erase(request: Request, caller: Writer, form: Form) -> Response:
    """The API's ``DELETE /v1/memories?user_id=...&erase=true``: every memory, its history and
    ingest events; only when the typed confirmation names the user."""
    user = scope_id(form.get("user_id"), "user_id")
    if form.get("confirm") != user:
        raise InvalidInput.at(("confirm",), "type the user id to confirm the erasure")
    async with admitted(request, caller, "admin"):
        erased = await (await get_service(request)).erase_user(caller.users.internal(user))
    return _to("/", done=f"erased user {user}: {erased} memories")
