"""Memories as Mem0 shows them: the wire object, and the record its filters are tested on."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway.api.mem0.entities import Partitions
from gateway.api.mem0.filters import as_time
from gateway.api.mem0.schemas import ACTOR_KEY, APP_KEY, RESERVED_PREFIX, ROLE_KEY, text_hash
from gateway.domain.model import HistoryEvent, Memory
from gateway.memory.clock import time_text


def iso(stored: str | None) -> str | None:
    """Store time ("...Z") as ISO-8601 with an explicit UTC offset, the way Mem0 writes it."""
    if stored is None:
        return None
    return stored[:-1] + "+00:00" if stored.endswith("Z") else stored


def expiry_date(stored: str | None) -> str | None:
    """The last day a memory is live (YYYY-MM-DD): Mem0's ``expiration_date``, which keeps it
    through that day, so it is the day before the instant it expires."""
    moment = as_time(stored) if stored else None
    return None if moment is None else str((moment - timedelta(microseconds=1)).date())


def user_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if not k.startswith(RESERVED_PREFIX)}


def memory_out(memory: Memory, parts: Partitions, *, score: float | None = None,
               fields: list[str] | None = None) -> dict[str, Any]:
    """A Mem0 memory object (``score`` added for search results; ``fields`` picks keys)."""
    meta = memory.metadata
    out: dict[str, Any] = {
        "id": memory.id,
        "memory": memory.text,
        "hash": text_hash(memory.text),
        "user_id": parts.user_of(memory.user_id),
        "agent_id": memory.agent_id,
        "app_id": meta.get(APP_KEY),
        "run_id": memory.run_id,
        "metadata": user_metadata(meta),
        "categories": [],
        "created_at": iso(memory.created_at),
        "updated_at": iso(memory.updated_at),
        "timestamp": iso(memory.occurred_at),
        "expiration_date": expiry_date(memory.expires_at),
        # memories added before role and speaker had fields of their own keep them in metadata
        "role": memory.role if memory.role is not None else meta.get(ROLE_KEY),
        "actor_id": memory.speaker if memory.speaker is not None else meta.get(ACTOR_KEY),
        "immutable": False,
    }
    if score is not None:
        out["score"] = score
    if fields:
        out = {k: v for k, v in out.items() if k in fields or k == "id"}
    return out


def record(memory: Memory, parts: Partitions) -> dict[str, Any]:
    """What a Mem0 filter reads of a memory (times as aware datetimes)."""
    meta = memory.metadata
    return {
        "id": memory.id,
        "user_id": parts.user_of(memory.user_id),
        "agent_id": memory.agent_id,
        "app_id": meta.get(APP_KEY),
        "run_id": memory.run_id,
        "text": memory.text,
        "metadata": user_metadata(meta),
        "categories": [],
        "created_at": as_time(memory.created_at),
        "updated_at": as_time(memory.updated_at),
        "timestamp": as_time(memory.occurred_at),
        "expiration_date": as_time(expiry_date(memory.expires_at)),  # the day, as shown
    }


def history_out(event: HistoryEvent, memory_id: str, parts: Partitions) -> dict[str, Any]:
    """One history entry in Mem0's shape (ADD/UPDATE/DELETE, old and new text)."""
    at = iso(event.at)
    return {
        "id": f"{memory_id}:{at}:{event.event}",
        "memory_id": memory_id,
        "old_memory": event.old_text,
        "new_memory": event.new_text,
        "event": event.event,
        "user_id": parts.user_of(event.user_id) if event.user_id else None,
        "metadata": user_metadata(event.payload.get("metadata") or {}),
        "input": [],
        "is_deleted": event.event == "DELETE",
        "created_at": at,
        "updated_at": at,
    }


def store_time(moment: datetime) -> str:
    """An aware datetime in the store's text form (UTC, microseconds, 'Z')."""
    return time_text(moment)
