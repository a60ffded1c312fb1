"""Mem0 adds through the service's ingest path (the one ``/v1/memories`` with ``messages``
uses): messages normalised, deduplicated with an ADD, UPDATE or NOOP event per memory,
extracted by the LLM when ``infer`` asks for it, queued with ``async_mode``.

Mem0's contract, translated: ``infer`` defaults to true in Mem0, so an add that does not say
runs the extraction when an LLM is configured and stores the messages as they are otherwise;
``infer: true`` on a server without an LLM is a 422 (nothing stored). ``async_mode: true``
answers ``{"status": "PENDING", "event_id"}`` at once, and ``GET /v1/event/{event_id}/``
follows the event. Role and speaker go in the memory's own fields.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.api.mem0 import query
from gateway.api.mem0.entities import Entity, Partitions
from gateway.api.mem0.filters import as_time
from gateway.api.mem0.schemas import APP_KEY, RESERVED_PREFIX, AddIn
from gateway.api.mem0.views import store_time
from gateway.domain.normalise import normalise_text
from gateway.errors import InvalidInput
from gateway.memory.changes import NewMemory
from gateway.memory.conversation import Said, contexts
from gateway.memory.events import Ingest, ItemResult, Report
from gateway.memory.writeplan import Draft
from gateway.store.types import IngestEvent

Json = dict[str, Any]
SKIPPED_ROLES = frozenset({"system"})  # instructions to the model, not things to remember
ADDED_MESSAGE = "Memories added successfully"
QUEUED_MESSAGE = "Memory processing has been queued for background execution"


def metadata_of(given: dict[str, Any] | None) -> dict[str, Any]:
    reserved = sorted(k for k in (given or {}) if k.startswith(RESERVED_PREFIX))
    if reserved:
        raise InvalidInput(f"metadata keys starting with {RESERVED_PREFIX!r} are reserved: "
                           f"{', '.join(reserved)}")
    return dict(given or {})


def expires_at(expiration_date: str | None) -> str | None:
    """Mem0 keeps a memory through its expiration date (it expires when that day ends)."""
    if expiration_date is None:
        return None
    moment = as_time(expiration_date)
    if moment is None or len(expiration_date.strip()) != 10:
        raise InvalidInput("expiration_date must be a date, YYYY-MM-DD")
    return store_time(moment + timedelta(days=1))


def occurred_at(timestamp: float | str | None) -> str | None:
    if timestamp is None:
        return None
    moment = as_time(timestamp)
    if moment is None:
        raise InvalidInput("timestamp must be Unix seconds or an ISO-8601 time")
    return store_time(moment)


def wants_inference(body: AddIn, ingest: Ingest) -> bool:
    if body.infer is None:
        return ingest.extraction is not None
    if body.infer and ingest.extraction is None:
        raise InvalidInput("infer: LLM extraction is not configured on this server (set "
                           "MEMORY_LLM_BASE_URL and MEMORY_LLM_MODEL); nothing was stored. "
                           "Send infer: false to store the messages as they are")
    return body.infer


def drafts_of(body: AddIn, parts: Partitions, dedup: bool) -> list[Draft]:
    """One draft per non-empty user/assistant message, normalised like ``/v1/memories`` and
    with the neighbouring messages as its keyword context (``gateway.memory.conversation``)."""
    entity: Entity = query.add_entity(body, body.filters)
    base = metadata_of(body.metadata)
    if entity.app_id:
        base[APP_KEY] = entity.app_id
    occurred, expires = occurred_at(body.timestamp), expires_at(body.expiration_date)
    kept = [(m, text) for m in body.messages
            if (text := normalise_text(m.content)) and m.role not in SKIPPED_ROLES]
    around = contexts([Said(m.name or m.role, text) for m, text in kept])
    drafts = [Draft(NewMemory(
        user_id=parts.of(entity), text=text, agent_id=entity.agent_id, run_id=entity.run_id,
        metadata=dict(base), occurred_at=occurred, expires_at=expires, role=message.role,
        speaker=message.name, context=context,
    ), dedup, False) for (message, text), context in zip(kept, around, strict=True)]
    if not drafts:
        raise InvalidInput("messages: nothing to remember (every message is empty or a "
                           "system message)")
    return drafts


def result_out(result: ItemResult) -> Json:
    memory = result.memory
    return {"id": memory.id, "memory": memory.text, "data": {"memory": memory.text},
            "event": result.event, "role": memory.role, "actor_id": memory.speaker}


def added_out(report: Report, event_id: str) -> Json:
    out: Json = {"message": ADDED_MESSAGE, "status": "SUCCEEDED", "event_id": event_id,
                 "results": [result_out(r) for r in report.results]}
    if report.inference is not None:
        out["inference"] = {"status": report.inference.status,
                            "fallback": report.inference.fallback,
                            "detail": report.inference.detail,
                            "event_id": report.inference.event_id}
    return out


def queued_out(event_id: str) -> Json:
    return {"message": QUEUED_MESSAGE, "status": "PENDING", "event_id": event_id}


def event_out(event: IngestEvent) -> Json:
    """An ingest event as Mem0's event object (``results`` once it ran)."""
    report, _ = Report.decode(event.result)
    return {"id": event.id, "event_type": "ADD", "status": event.status,
            "results": [result_out(r) for r in report.results], "error": event.error,
            "created_at": event.created_at, "updated_at": event.updated_at}
