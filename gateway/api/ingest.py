"""Wire to domain for adds: texts and conversations become normalised drafts, outcomes
become ``AddedOut`` answers. Used by the add and batch routes of ``/v1/memories``."""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Annotated

from fastapi import Depends, Request, status
from fastapi.responses import JSONResponse

from gateway.api.deps import gateway_state
from gateway.api.schemas import (
    MAX_BATCH_ITEMS,
    AcceptedOut,
    AddedOut,
    BatchIn,
    BatchOut,
    InferenceOut,
    MemoryIn,
    moment_text,
)
from gateway.auth.scope import TenantScope
from gateway.domain.normalise import normalise_text
from gateway.errors import InvalidInput
from gateway.memory.changes import NewMemory
from gateway.memory.conversation import Said, contexts
from gateway.memory.dedup import DedupPolicy
from gateway.memory.events import Ingest, ItemResult, Report
from gateway.memory.writeplan import Draft

SKIPPED_ROLES = frozenset({"system"})  # instructions to the model, not things to remember


async def get_ingest(request: Request) -> Ingest:
    return gateway_state(request).ingest


def refuse_unconfigured(ingest: Ingest, infer: bool, loc: list[str | int]) -> None:
    """``infer`` without an LLM is refused before anything is stored, rather than storing raw
    memories the caller did not ask for."""
    if infer and ingest.extraction is None:
        raise InvalidInput([{"loc": [*loc, "infer"], "type": "value_error",
                             "msg": "LLM extraction is not configured on this server (set "
                                    "MEMORY_LLM_BASE_URL and MEMORY_LLM_MODEL); nothing was "
                                    "stored"}])


def accepted(event_id: str) -> JSONResponse:
    return JSONResponse(AcceptedOut(event_id=event_id, status="PENDING").model_dump(),
                        status_code=status.HTTP_202_ACCEPTED)


def result_out(result: ItemResult, users: TenantScope) -> AddedOut:
    memory = users.outward(result.memory)
    fields = {name: getattr(memory, name) for name in AddedOut.model_fields
              if name not in ("event", "item", "match", "image")}
    return AddedOut(**fields, event=result.event, item=result.item, match=result.match)


def report_out(report: Report, users: TenantScope) -> BatchOut:
    inference = None
    if report.inference is not None:
        inference = InferenceOut(**asdict(report.inference))
    return BatchOut(results=[result_out(r, users) for r in report.results], inference=inference)


async def dedup_policy(request: Request) -> DedupPolicy:
    return gateway_state(request).dedup_policy


def drafts_of(item: MemoryIn, users: TenantScope, dedup: bool,
              loc: list[str | int]) -> list[Draft]:
    """The item's drafts: one for a text, one per non-empty, non-system message.

    Texts are normalised (``gateway.domain.normalise``); a text with nothing left is a 422.
    """
    base = NewMemory(
        user_id=users.internal(item.user_id), text="", agent_id=item.agent_id,
        run_id=item.run_id, metadata=item.metadata, priority=item.priority,
        embedding=item.embedding, occurred_at=moment_text(item.occurred_at),
        expires_at=moment_text(item.expires_at),
    )
    given = "priority" in item.model_fields_set
    if item.text is not None:
        text = normalise_text(item.text)
        if not text:
            raise InvalidInput([{"loc": [*loc, "text"], "type": "value_error",
                                 "msg": "nothing left once control characters are stripped"}])
        return [Draft(_with(base, text=text), dedup, given)]
    drafts = []
    kept = [(m, text) for m in item.messages or []
            if (text := normalise_text(m.content)) and m.role not in SKIPPED_ROLES]
    around = contexts([Said(m.name or m.role, text) for m, text in kept])
    for (message, text), context in zip(kept, around, strict=True):
        drafts.append(Draft(_with(
            base, text=text, role=message.role, speaker=message.name, context=context,
            occurred_at=moment_text(message.timestamp) or base.occurred_at), dedup, given))
    if not drafts:
        raise InvalidInput([{"loc": [*loc, "messages"], "type": "value_error",
                             "msg": "nothing to remember: every message is empty or a system "
                                    "message"}])
    return drafts


def _with(base: NewMemory, **fields: object) -> NewMemory:
    return replace(base, **fields)  # type: ignore[arg-type]


def batch_drafts(body: BatchIn, users: TenantScope,
                 default: bool) -> tuple[list[list[Draft]], list[Draft], list[int]]:
    """Each item's drafts, all drafts in order, and the item each came from. Options that act
    on the whole request (``infer``, ``async_mode``) are set on the batch, not on its items."""
    per_item: list[list[Draft]] = []
    drafts: list[Draft] = []
    positions: list[int] = []
    for i, item in enumerate(body.items):
        loc: list[str | int] = ["body", "items", i]
        for option in ("infer", "async_mode"):
            if option in item.model_fields_set:
                raise InvalidInput([{"loc": [*loc, option], "type": "value_error",
                                     "msg": f"set '{option}' on the batch, not on an item"}])
        dedup = default if item.dedup is None else item.dedup
        made = drafts_of(item, users, dedup, loc)
        per_item.append(made)
        drafts.extend(made)
        positions.extend([i] * len(made))
    if len(drafts) > MAX_BATCH_ITEMS:
        raise InvalidInput([{"loc": ["body", "items"], "type": "value_error",
                             "msg": f"at most {MAX_BATCH_ITEMS} memories per request "
                                    f"(these items make {len(drafts)})"}])
    return per_item, drafts, positions


DedupPolicyDep = Annotated[DedupPolicy, Depends(dedup_policy)]
IngestDep = Annotated[Ingest, Depends(get_ingest)]
