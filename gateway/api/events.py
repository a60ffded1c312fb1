"""``/v1/events/{id}``: the status of an asynchronous (``async_mode``) or queued ingest request.

An event of another tenant is indistinguishable from a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from gateway.api.deps import Caller
from gateway.api.errors import COMMON_ERRORS, error_responses
from gateway.api.ingest import IngestDep, report_out
from gateway.api.schemas import EventOut
from gateway.errors import InvalidInput, NotFound
from gateway.memory.events import Report
from gateway.memory.ids import parse_id

router = APIRouter(prefix="/v1/events", tags=["events"],
                   responses=error_responses(*COMMON_ERRORS))


async def event_id(id: str) -> str:
    parsed = parse_id(id)
    if parsed is None:
        raise InvalidInput([{"loc": ["path", "id"], "msg": "must be a UUID", "type": "uuid"}])
    return parsed


@router.get("/{id}", response_model=EventOut, responses=error_responses(404))
async def get_event(event: Annotated[str, Depends(event_id)], ingest: IngestDep,
                    caller: Caller) -> EventOut:
    found = await ingest.events.get_event(event)
    if found is None or not caller.users.owns(found.user_id):
        raise NotFound(f"event {event} not found")
    report, _ = Report.decode(found.result)
    answer = report_out(report, caller.users)
    return EventOut(event_id=found.id, status=found.status, attempts=found.attempts,
                    error=found.error, created_at=found.created_at, updated_at=found.updated_at,
                    results=answer.results, inference=answer.inference)
