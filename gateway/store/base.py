"""The store boundary: every operation the gateway asks of durable state, as one protocol.

The memory service, the jobs, backup, model-version migration, the Mem0 finder and the
metrics talk to a ``Store``; the SQLite backend (``gateway.store.sqlite.store.SQLiteStore``)
implements it, and a second backend implements the same methods (the contract tests,
``tests/gateway/store/test_contract.py``, run against each). Grouped by concern, as smaller
protocols a caller may ask for alone; ``Store`` is all of them. Times are the store's UTC
ISO-8601 text (sorts as text); a write returns once it has committed. The values crossing the
boundary are in ``gateway.store.types``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gateway.domain.model import (
    HistoryEvent,
    Memory,
    SearchFilters,
    StoredImage,
    StoredMemory,
)
from gateway.store.types import (
    CONTEXT_WEIGHT,
    EVERY_USER,
    Census,
    Enqueued,
    Erased,
    EventStatus,
    ExactQuery,
    FeedPage,
    FeedRow,
    Fold,
    IngestEvent,
    Job,
    JobStatus,
    KeyRow,
    ListOrder,
    ModelState,
    PendingImage,
    PendingMemory,
    Population,
    PruneBefore,
    Pruned,
    ShadowVector,
    UserRange,
    WritePlan,
)


class MemoryRows(Protocol):
    """Memories, their vectors and their history."""

    path: Path  # where it lives (the in-use lock sits beside it)
    lexical_index: bool  # whether writes keep the keyword index

    @property
    def is_open(self) -> bool: ...

    async def open(self) -> int:
        """Open (and migrate); returns the schema version."""
        ...

    async def close(self) -> None: ...

    async def insert_many(self, items: list[StoredMemory],
                          shadows: list[ShadowVector] | None = None) -> None:
        """Insert all or none, with an ADD event each (and their migration vectors);
        ``RowConflict`` when an id is stored already (nothing is written then)."""
        ...

    async def update(self, updated: StoredMemory | Memory, previous: Memory,
                     shadow: ShadowVector | None = None) -> bool:
        """Replace a memory's fields (and vector, given a ``StoredMemory``) if it still is
        ``previous`` (same ``updated_at``); False when it changed or vanished meanwhile."""
        ...

    async def delete(self, memory_id: str, at: str) -> tuple[Memory, list[StoredMemory]] | None:
        """Delete one memory; returns it and the archived sources its deletion restored (a
        deleted summary gives its sources back), or None when there is no such memory."""
        ...

    async def delete_user(self, user_id: str, at: str) -> list[str]:
        """Delete every memory of a user (a DELETE event each); returns their ids."""
        ...

    async def erase(self, memory_id: str, at: str) -> Erased | None:
        """Right to erasure of one memory, in one transaction: delete its row (a deleted
        summary restores its sources, as ``delete``) with no DELETE event, all its history
        events, and the ingest events that name it; afterwards its text is in no table and,
        as far as the backend can, in none of its files. None when neither the memory nor
        its history is stored."""
        ...

    async def erase_user(self, user_id: str) -> list[str]:
        """Right to erasure of a user: every memory (archived ones too), every history event
        of the user's memories (deleted ones too) and every ingest event of the user, in one
        transaction, with no trace in the files as for ``erase``; returns the ids of the
        memories that were live."""
        ...

    async def get(self, memory_id: str) -> Memory | None: ...

    async def get_many(self, ids: list[str]) -> dict[str, Memory]: ...

    async def list_page(
        self, user_id: str, limit: int, after_id: str | None, *,
        order_by: ListOrder = "id", after_occurred: str | None = None,
        descending: bool = False, live_at: str | None = None, archived: bool = False,
    ) -> list[Memory]:
        """Up to ``limit`` of a user's memories after a position (keyset paging: the last row
        of the previous page, ``after_id`` with its ``after_occurred`` when ordering by
        occurrence), in id or (occurred_at, id) order; ``live_at`` leaves out those expired
        then. Archived memories are listed only with ``archived``."""
        ...

    async def history(self, memory_id: str) -> list[HistoryEvent]:
        """The memory's events, oldest first (kept after its deletion)."""
        ...

    async def filter_ids(self, user_id: str, filters: SearchFilters) -> set[str]:
        """Ids of the user's memories that satisfy every filter condition."""
        ...

    async def expired_ids(self, user_id: str, at: str, limit: int) -> set[str]:
        """Up to ``limit`` ids of the user's live (not archived) memories expired at ``at``."""
        ...

    async def keyword_search(
        self, user_id: str, query: str, k: int, filters: SearchFilters, *,
        date_weight: float = 1.0, archived: bool = False,
        context_weight: float = CONTEXT_WEIGHT,
    ) -> list[tuple[str, float]]:
        """Up to ``k`` of the user's memories matching any query term, as (id, BM25 score),
        best first; scores are positive, higher is better. A query with no searchable term
        returns []. ``date_weight`` and ``context_weight`` weigh matches in the memory's date
        and conversation context against its text (1.0; 0 leaves them out); ``archived``
        searches the archived memories instead."""
        ...

    async def keyword_memories(
        self, user_id: str, query: str, k: int, filters: SearchFilters, *,
        date_weight: float = 1.0, archived: bool = False,
        context_weight: float = CONTEXT_WEIGHT,
    ) -> list[tuple[Memory, float]]:
        """``keyword_search`` with each hit's memory read in the same store call (a search
        that shows its hits needs them: one round trip fewer on a client-server store)."""
        ...

    async def embeddings(self, ids: list[str]) -> dict[str, tuple[str, np.ndarray]]:
        """(model label, vector) of each found id."""
        ...

    async def existing_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` are stored."""
        ...

    async def count(self) -> int:
        """All stored memories, archived ones included."""
        ...

    async def user_vectors(self, user_id: str) -> tuple[list[str], np.ndarray]:
        """One user's ids and vectors in id order, archived ones aside (not indexed)."""
        ...

    async def vectors(self, batch: int = 5000) -> list[tuple[str, str, np.ndarray]]:
        """Every (user_id, id, vector) but the archived, for rebuilding the index."""
        ...

    async def image(self, memory_id: str) -> StoredImage | None:
        """An image memory's picture and CLIP vector; None for a text memory or no memory."""
        ...

    async def image_vectors(self, user_id: str, model: str, filters: SearchFilters
                            ) -> tuple[list[str], np.ndarray]:
        """The user's unarchived image memories matching ``filters`` whose CLIP vector is of
        space ``model``: (ids in id order, ``[n, dimension]`` float32; ``[0, 0]`` when none)."""
        ...


class WritePlans(Protocol):
    """Ingest's exact-duplicate lookups and all-or-nothing write plans; the archive."""

    async def exact_matches(self, queries: list[ExactQuery], live_at: str
                            ) -> list[Memory | None]:
        """For each query, the oldest live, unarchived memory in its scope (agent and run
        exactly, None included) with the same text key."""
        ...

    async def apply(self, plan: WritePlan) -> None:
        """Commit the whole plan, or raise ``StaleWrite`` having written nothing."""
        ...

    async def fold(self, folds: list[Fold], at: str) -> None:
        """Insert each summary and archive its sources, all or nothing: ``StaleWrite`` when
        a source changed or was archived since it was read."""
        ...

    async def compressible(self, user_id: str, max_priority: int, live_at: str, *,
                           after: str = "", limit: int = -1) -> list[StoredMemory]:
        """The user's live memories with priority at most ``max_priority`` that are not
        summaries, archived ones included, with vectors, in id order; a page of ``limit``
        after id ``after`` (-1: all)."""
        ...

    async def archived_vectors(self, user_id: str, filters: SearchFilters
                               ) -> list[tuple[str, str, np.ndarray]]:
        """(id, model label, vector) of the user's archived memories passing ``filters``."""
        ...

    async def delete_expired(self, user_id: str, at: str
                             ) -> tuple[list[Memory], list[StoredMemory]]:
        """Delete the user's memories expired at ``at`` (archived ones too) with history
        (``{"reason": "expired"}``); returns them and the sources restored from expired
        summaries."""
        ...


class Counts(Protocol):
    """Who has memories, without reading them."""

    async def user_counts(self, users: list[str]) -> dict[str, int]:
        """Stored memories of each given user (users without any are left out)."""
        ...

    async def census(self, quantiles: tuple[float, ...]) -> Census:
        """Users, memories and per-user quantiles of the memory count."""
        ...

    async def populations(self, tag_key: str, user_prefix: str = "",
                          without: str | None = None) -> list[Population]:
        """Every distinct (user_id, agent_id, run_id, metadata[tag_key]) with its count, over
        the users whose id starts with ``user_prefix`` and (given ``without``) does not hold
        that text: one tenant's count reads that tenant's rows, not every tenant's. Runs
        beside the writer, never on it."""
        ...


class EventQueue(Protocol):
    """Ingest events: asynchronous adds and extractions, durable before their 202."""

    async def create_event(self, event_id: str, user_id: str, request: dict[str, Any],
                           now: str, *, next_attempt: str | None = None, attempts: int = 0,
                           error: str | None = None) -> None: ...

    async def get_event(self, event_id: str) -> IngestEvent | None: ...

    async def claim_event(self, now: str) -> IngestEvent | None:
        """The most overdue PENDING event, now RUNNING (one atomic step)."""
        ...

    async def next_event_due(self) -> str | None:
        """When the next PENDING event is due (None: none is)."""
        ...

    async def save_event(self, event_id: str, status: EventStatus, now: str, *,
                         result: dict[str, Any] | None = None, error: str | None = None,
                         attempts: int | None = None, next_attempt: str | None = None) -> None:
        """New status (and progress, error, attempt count, next try) of an event; a None
        ``result`` or ``attempts`` keeps the stored one."""
        ...

    async def recover_events(self, now: str) -> int:
        """Put events a dead process left RUNNING back in the queue; returns how many."""
        ...


class JobTable(Protocol):
    """Consolidation jobs with leases; ``attempts`` is the fencing token. A job's ``tenant``
    is the tenant whose users it works on (None: every tenant's)."""

    async def create_job(self, job_id: str, kind: str, user_id: str | None, now: str, *,
                         tenant: str | None = None) -> Job: ...

    async def enqueue_job(self, job_id: str, kind: str, user_id: str | None, now: str, *,
                          tenant: str | None = None,
                          max_pending: int | None = None) -> Enqueued:
        """In one step: the equal pending job (same kind, user, tenant) if there is one,
        else nothing when ``tenant`` holds ``max_pending`` pending jobs, else a new job."""
        ...

    async def get_job(self, job_id: str) -> Job | None: ...

    async def recent_jobs(self, limit: int, tenant: str | None = None) -> list[Job]:
        """The newest jobs first; of one tenant, or of all when ``tenant`` is None."""
        ...

    async def job_pending(self, kind: str, user_id: str | None,
                          tenant: str | None = None) -> bool:
        """Whether such a job is queued or running already (schedules do not pile up)."""
        ...

    async def claim_job(self, now: str, lease_until: str) -> Job | None:
        """A queued job, or a running one whose lease expired, now running with ``attempts``
        one higher: service-wide jobs first, then tenants in turns, oldest first."""
        ...

    async def checkpoint_job(self, job: Job, cursor: str, progress: dict[str, Any], now: str,
                             lease_until: str) -> bool:
        """Record a finished user and renew the lease; False if the claim was lost."""
        ...

    async def finish_job(self, job: Job, status: JobStatus, progress: dict[str, Any],
                         now: str, error: str | None = None) -> bool:
        """Done or failed; False if the claim was lost."""
        ...

    async def next_user(self, after: str, within: UserRange = EVERY_USER) -> str | None:
        """The first user (internal id) after ``after`` in id order that has memories, among
        the ids ``within`` spans."""
        ...


class Retention(Protocol):
    """Dropping what is kept only for a while (``MEMORY_RETENTION_*``)."""

    async def prune(self, before: PruneBefore) -> Pruned:
        """Drop finished jobs and finished ingest events older than their cut-offs, and the
        history of memories deleted before the history cut-off (a live memory's history
        stays), in short transactions."""
        ...


class VersionTable(Protocol):
    """Active model versions and an embedder migration's shadow vectors."""

    async def model_state(self, model: str) -> ModelState | None: ...

    async def set_active_version(self, model: str, version: str) -> None:
        """Record the active version (first start, reranker switch)."""
        ...

    async def adopt_versions(self, models: dict[str, str]) -> dict[str, str]:
        """Take these active versions for models with none recorded (an import into an
        empty store); returns every recorded model's active version."""
        ...

    async def begin_migration(self, model: str, target: str, at: str) -> bool:
        """Start re-embedding into ``target``: no shadow vectors, cursor at the start. False
        (nothing changed) while a migration runs already: of replicas sharing the store, one
        begins it, the others follow it through the change feed."""
        ...

    async def migration_pending(self, after_id: str, limit: int) -> list[PendingMemory]:
        """Memories after the cursor in id order, text as writes embed it (the speaker's
        name first): the re-embed job's next batch. Past the last id, the memories still
        without a target vector (written, or given a new vector by ``update`` without one,
        by a replica that had not followed the migration yet)."""
        ...

    async def put_shadow_batch(self, model: str, label: str, batch: list[PendingMemory],
                               vectors: np.ndarray) -> list[PendingMemory]:
        """Store target vectors for rows unchanged since read and move the cursor; returns
        the rows written (an updated row already has its target vector)."""
        ...

    async def shadow_vectors(self) -> list[tuple[str, str, np.ndarray]]:
        """(user_id, id, vector) of every shadow vector but the archived."""
        ...

    async def migration_progress(self) -> tuple[int, int]:
        """(memories with a target vector, all memories)."""
        ...

    async def switch_version(self, model: str, target: str, label: str) -> bool:
        """Make the target active with its vectors, atomically; False (nothing changed)
        if a memory lacks a target vector."""
        ...

    async def abandon_migration(self, model: str) -> None:
        """Roll a migration back: the active version stays, shadow vectors go."""
        ...


class ImageVersionTable(Protocol):
    """A CLIP migration: every stored picture re-embedded by the target version beside its
    active vector, then all moved at once. The active CLIP version and the target are a
    ``model_state`` row (``VersionTable.model_state``) under the CLIP model's name."""

    async def begin_image_migration(self, model: str, target: str, at: str) -> bool:
        """Start re-embedding pictures into ``target``: no target vectors, cursor at the
        start. False (nothing changed) while a CLIP migration runs already."""
        ...

    async def image_migration_pending(self, after_id: str, limit: int) -> list[PendingImage]:
        """Pictures after the cursor in id order; past the last id, the pictures still
        without a target vector (added during the migration)."""
        ...

    async def put_image_shadow_batch(self, model: str, label: str, ids: list[str],
                                     vectors: np.ndarray) -> int:
        """Target vectors (space ``label``) for the pictures still stored; moves the cursor;
        returns how many were written."""
        ...

    async def image_migration_progress(self) -> tuple[int, int]:
        """(pictures with a target vector, all pictures)."""
        ...

    async def switch_image_version(self, model: str, target: str, label: str) -> bool:
        """Make ``target`` active with its vectors, atomically; False (nothing changed)
        while a picture lacks its target vector."""
        ...

    async def abandon_image_migration(self, model: str) -> None:
        """Roll a CLIP migration back: the active version stays, target vectors go."""
        ...


class ChangeFeed(Protocol):
    """What replicas learn of each other's writes: every committed change that an in-process
    vector index must follow (a memory added, updated, deleted, archived or restored, a shadow
    vector written, a model-version change) appends a row to a change log in the same
    transaction as the write, so a change is in the log exactly when it is in the store.
    ``seq`` increases in commit order; a follower keeps the last seq it applied."""

    @property
    def origin(self) -> str:
        """This store instance's name in the log (a follower skips its own changes)."""
        ...

    async def last_change(self) -> int:
        """The newest seq (0: none yet)."""
        ...

    async def user_change_stamp(self, user_id: str) -> int:
        """A number that moves on every change of the user's memories and never goes back:
        the user's newest seq, or the log's trimmed watermark when higher. Equal stamps mean
        nothing of the user changed in between (a cached copy is still good)."""
        ...

    async def changes_since(self, after: int, limit: int) -> FeedPage:
        """Up to ``limit`` changes with seq > ``after``, oldest first."""
        ...

    async def wait_for_change(self, after: int, timeout_s: float) -> int:
        """The newest seq once it is past ``after``, or after ``timeout_s`` whatever it is.
        Cheap to call in a loop; a missed wake-up costs at most ``timeout_s`` of lag."""
        ...

    async def feed_rows(self, ids: list[str]) -> dict[str, FeedRow]:
        """The index-relevant state of each stored id (absent: deleted or erased)."""
        ...

    async def trim_changes(self, before: float) -> int:
        """Drop changes committed before ``before`` (Unix seconds), always keeping the
        newest; returns how many went."""
        ...


class Store(MemoryRows, WritePlans, Counts, EventQueue, JobTable, Retention, VersionTable,
            ImageVersionTable, ChangeFeed, Protocol):
    """Everything the gateway keeps durably but API keys (``KeyTable``)."""


class KeyTable(Protocol):
    """API keys, in a file of their own (they do not travel with memory backups)."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def insert(self, row: KeyRow) -> None: ...

    def find(self, key_id: str) -> KeyRow | None: ...

    def all(self, tenant: str | None) -> list[KeyRow]:
        """Every key (of one tenant), oldest first."""
        ...

    def revoke(self, key_id: str, at: str) -> bool:
        """Mark a live key revoked; False if there is no such live key."""
        ...
