"""Values that cross the store boundary: what callers hand a store and what it hands back.

Every backend takes and returns these; none of them knows SQL. They sit beside the protocol
(``gateway.store.base``) so a caller needs neither the backend nor its rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np

from gateway.domain.model import Memory, StoredMemory

ShadowVector = tuple[str, np.ndarray]  # (target model label, vector) during a migration
ListOrder = Literal["id", "occurred_at"]
EventStatus = Literal["PENDING", "RUNNING", "SUCCEEDED", "FAILED"]
JobStatus = Literal["queued", "running", "done", "failed"]
# BM25 weight of a match in a message's conversation context against one in its text (1.0):
# chosen on the LoCoMo development set (docs/benchmarks/retrieval.md).
CONTEXT_WEIGHT = 0.3


class RowConflict(Exception):
    """Rows to insert clash with stored ones (an id that exists already); nothing was written."""


class StaleWrite(Exception):
    """A memory in the plan changed or vanished since it was read; nothing was written."""


class StaleVersion(Exception):
    """A vector labelled with a model version that is no longer live (another replica
    switched or ended a migration meanwhile); nothing was written. Follow the model state
    and embed again."""


@dataclass(frozen=True, slots=True)
class ExactQuery:
    """Is there a live memory with this text key in this scope?"""

    user_id: str
    agent_id: str | None
    run_id: str | None
    key: str


@dataclass(frozen=True, slots=True)
class Change:
    """An existing memory's new state, applied only if it still is ``previous``."""

    previous: Memory
    updated: Memory | StoredMemory  # with a vector when the text changed
    payload: dict[str, Any] = field(default_factory=dict)  # goes into the UPDATE event
    shadow: ShadowVector | None = None  # the new text's vector in a migration's target


@dataclass(slots=True)
class WritePlan:
    """New, changed and deleted memories that commit in one transaction or not at all: a
    batch with duplicates, or an LLM's decision set, never lands half-applied."""

    inserts: list[StoredMemory] = field(default_factory=list)
    shadows: list[ShadowVector] | None = None  # one per insert during a migration
    changes: list[Change] = field(default_factory=list)
    deletes: list[Memory] = field(default_factory=list)
    payload: dict[str, Any] = field(default_factory=dict)  # goes into every event
    at: str = ""  # when the deletes happen (their DELETE events)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)  # memory id -> its event's


@dataclass(frozen=True, slots=True)
class Fold:
    """Sources folded into a summary: the summary is added, every source archived."""

    summary: StoredMemory  # its ``sources`` lists the sources' ids
    sources: list[Memory]  # as the job read them
    payload: dict[str, Any] = field(default_factory=dict)  # into the summary's ADD event
    shadow: ShadowVector | None = None  # the summary's vector in a migration's target


@dataclass(frozen=True, slots=True)
class IngestEvent:
    """An asynchronous add or LLM extraction, written before it is acknowledged with 202."""

    id: str
    user_id: str  # internal id of the first item's user: the tenant check reads it
    status: EventStatus
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    attempts: int
    next_attempt: str | None
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class Job:
    """A consolidation job; ``attempts`` is its fencing token (see ``Store.claim_job``)."""

    id: str
    kind: str
    user_id: str | None  # None: every user
    status: JobStatus
    attempts: int
    lease_until: str | None
    cursor: str  # the last user finished ('' = none yet)
    progress: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None
    tenant: str | None = None  # whose users it works on (None: every tenant's)


@dataclass(frozen=True, slots=True)
class Enqueued:
    """What asking for a job gave: the job, and whether it is new (else an equal one was
    pending already); ``job`` is None when the tenant's pending jobs are at their limit."""

    job: Job | None
    created: bool


@dataclass(frozen=True, slots=True)
class UserRange:
    """The user ids a walk over users visits: those starting with ``prefix`` and, when
    ``without`` is set, not containing it (a store knows user ids, never tenants)."""

    prefix: str = ""
    without: str | None = None


EVERY_USER = UserRange()


@dataclass(frozen=True, slots=True)
class PruneBefore:
    """Retention cut-offs (timestamps; None keeps everything of that kind)."""

    jobs: str | None  # finished jobs that finished before it
    events: str | None  # finished ingest events last changed before it
    history: str | None  # the history of memories deleted before it


@dataclass(frozen=True, slots=True)
class Pruned:
    jobs: int = 0
    events: int = 0
    history: int = 0  # history rows


@dataclass(frozen=True, slots=True)
class ModelState:
    model: str
    active: str  # version number as text
    target: str | None  # set while a migration runs
    cursor: str  # last memory id re-embedded ('' = none yet)
    started_at: str | None


@dataclass(frozen=True, slots=True)
class PendingMemory:
    id: str
    user_id: str
    text: str
    updated_at: str
    archived: bool = False  # gets a target vector (include_archived scores it), no index entry


@dataclass(frozen=True, slots=True)
class PendingImage:
    """A stored picture still to be embedded by a CLIP migration's target version."""

    id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Census:
    users: int  # users with at least one stored memory
    memories: int  # stored memories (archived ones included)
    per_user: dict[float, float]  # quantile (over users) -> memories of that user


class Population(NamedTuple):
    user_id: str
    agent_id: str | None
    run_id: str | None
    tag: object  # the value of the metadata key asked for (None when absent)
    memories: int


@dataclass(frozen=True, slots=True)
class KeyRow:
    """One API key as its table holds it (``gateway.auth.store`` gives it meaning)."""

    key_id: str
    hash: str
    tenant: str
    scope: str  # read | write | admin
    name: str
    rate_per_s: float | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure removed: the live memory (None: it was deleted before, only its
    history was left), the archived sources its deletion restored (a summary gives its
    sources back, as on delete), and how many history and ingest events went with it."""

    user_id: str
    memory: Memory | None
    restored: list[StoredMemory]
    history_events: int
    ingest_events: int


# -- the change feed (``gateway.store.base.ChangeFeed``) -------------------------------------
FeedKind = Literal["add", "update", "delete", "archive", "restore", "shadow", "user", "version"]


@dataclass(frozen=True, slots=True)
class FeedChange:
    """One committed change a replica's vector index must learn about.

    ``seq`` increases in commit order; ``memory_id`` names the memory (None for ``user`` and
    ``version``), ``user_id`` its partition (None for ``version``); ``origin`` is the store
    instance (a gateway process) that wrote it; ``at`` is the commit's wall-clock time in Unix
    seconds, by the store's clock.
    """

    seq: int
    kind: FeedKind
    memory_id: str | None
    user_id: str | None
    origin: str
    at: float


@dataclass(frozen=True, slots=True)
class FeedPage:
    """Changes after a position, oldest first; ``missed``: some after it were trimmed already,
    so a follower cannot catch up change by change and must reload from the store."""

    changes: list[FeedChange]
    missed: bool = False


@dataclass(frozen=True, slots=True)
class FeedRow:
    """What an index needs of one memory as stored now: its partition, whether it is archived
    (archived memories are not indexed), its vector with the model label that made it, and
    during an embedder migration its target vector (None when it has none yet)."""

    user_id: str
    archived: bool
    label: str
    vector: np.ndarray
    shadow: ShadowVector | None = None
