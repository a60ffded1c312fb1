"""From drafts and the duplicates found for them to one write plan and an event per draft.

Each draft ends as one of Mem0's events:

- ``ADD``: no duplicate in its scope, a new memory;
- ``UPDATE``: a duplicate of a memory (stored, or added earlier in the same batch) and it
  changes that memory's metadata (merged, new keys win), priority (when the draft gives one),
  occurrence time (the later one) or expiry (when the draft gives one); the text stays;
- ``NOOP``: a duplicate that changes nothing.

Several drafts of one batch may land on the same memory: their changes fold together into one
stored UPDATE (or into the ADD, for a memory the batch creates).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from gateway.domain.model import Memory, StoredMemory
from gateway.memory.changes import NewMemory
from gateway.store.types import Change, WritePlan

Event = Literal["ADD", "UPDATE", "NOOP"]


@dataclass(frozen=True, slots=True)
class Draft:
    """A memory to write, and how: ``dedup`` per draft; ``priority_given`` says whether the
    caller chose the priority (else a duplicate keeps the stored one)."""

    memory: NewMemory
    dedup: bool = True
    priority_given: bool = True


@dataclass(frozen=True, slots=True)
class Match:
    """What a draft duplicates: a stored memory, or an earlier draft of the batch."""

    kind: Literal["exact", "near"]
    similarity: float  # cosine of the two vectors
    memory: Memory | None = None
    earlier: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    event: Event
    memory: Memory  # as stored after the write
    duplicate: Match | None = None


def merged(memory: Memory, draft: Draft) -> Memory:
    """``memory`` with what a duplicate draft adds to it (the same object when nothing)."""
    new = draft.memory
    changes: dict[str, object] = {}
    if new.metadata and {**memory.metadata, **new.metadata} != memory.metadata:
        changes["metadata"] = {**memory.metadata, **new.metadata}
    if draft.priority_given and new.priority != memory.priority:
        changes["priority"] = new.priority
    if new.occurred_at is not None and new.occurred_at > memory.occurred_at:
        changes["occurred_at"] = new.occurred_at
    if new.expires_at is not None and new.expires_at != memory.expires_at:
        changes["expires_at"] = new.expires_at
    return replace(memory, **changes) if changes else memory  # type: ignore[arg-type]


def new_memory(draft: Draft, memory_id: str, model: str, now: str) -> Memory:
    d = draft.memory
    return Memory(
        id=memory_id, user_id=d.user_id, text=d.text, agent_id=d.agent_id, run_id=d.run_id,
        metadata=d.metadata or {}, priority=d.priority, created_at=now, updated_at=now,
        embedding_model=model, occurred_at=d.occurred_at or now, expires_at=d.expires_at,
        role=d.role, speaker=d.speaker,
    )


def plan(
    drafts: list[Draft], matches: list[Match | None], vectors: np.ndarray, ids: list[str],
    model: str, now: str,
) -> tuple[WritePlan, list[Outcome], list[int]]:
    """The write plan, each draft's outcome, and the draft positions that became inserts.

    ``matches[j].earlier`` must point at a smaller position; ``ids`` are fresh ids, one per
    draft (only those of ADDs are used).
    """
    state: dict[str, Memory] = {}  # memory id -> state after the drafts so far
    stored: dict[str, Memory] = {}  # memory id -> as read from the store (for the UPDATE)
    created: list[int] = []
    target_of: list[str] = []
    events: list[Event] = []
    for j, draft in enumerate(drafts):
        match = matches[j]
        if match is None:
            memory = new_memory(draft, ids[j], model, now)
            state[memory.id] = memory
            created.append(j)
            target_of.append(memory.id)
            events.append("ADD")
            continue
        if match.memory is not None:
            target = match.memory.id
            stored.setdefault(target, match.memory)
            state.setdefault(target, match.memory)
        else:
            assert match.earlier is not None and match.earlier < j
            target = target_of[match.earlier]
        after = merged(state[target], draft)
        events.append("NOOP" if after is state[target] else "UPDATE")
        state[target] = after
        target_of.append(target)
    write = WritePlan(payload={})
    for j in created:
        memory = state[ids[j]]
        write.inserts.append(StoredMemory(memory, vectors[j], drafts[j].memory.context))
    for memory_id, previous in stored.items():
        if state[memory_id] is not previous:
            updated = replace(state[memory_id], updated_at=max(now, previous.updated_at))
            state[memory_id] = updated
            write.changes.append(Change(previous, updated, {"reason": "duplicate"}))
    outcomes = [Outcome(events[j], state[target_of[j]], matches[j])
                for j in range(len(drafts))]
    return write, outcomes, created
