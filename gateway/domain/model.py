"""Domain types: plain frozen dataclasses, apart from the wire schemas in ``gateway.api``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_TEXT_CHARS = 8_000  # one memory's text; the API refuses more, summaries are cut to it


@dataclass(frozen=True, slots=True)
class Memory:
    id: str
    user_id: str
    text: str
    agent_id: str | None
    run_id: str | None
    metadata: dict[str, Any]
    priority: int
    created_at: str  # UTC ISO-8601 with microseconds and "Z": sorts as text
    updated_at: str
    embedding_model: str  # "name:version" of the model that made the vector
    occurred_at: str  # when the remembered event happened (UTC, like created_at)
    expires_at: str | None = None  # from then on left out of search and list by default
    role: str | None = None  # who said it, for a memory made from a message: user, assistant
    speaker: str | None = None  # the message's speaker name, when it had one
    # Archive (``gateway.jobs.compress``): a source folded into a summary keeps its row, left
    # out of default search and list; a summary lists its sources' ids.
    archived_at: str | None = None
    summary_id: str | None = None  # the summary that holds this archived memory
    sources: tuple[str, ...] | None = None  # on a summary: the memories it folds
    modality: str = "text"  # "image": an image memory (its text is the caption, maybe "")


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image memory's picture, re-encoded without metadata, and its vector in the CLIP
    space ``model`` ("clip:<version>"): images are searched there, apart from the text index."""

    data: bytes = field(repr=False)
    mime: str  # image/png, image/jpeg or image/webp
    width: int
    height: int
    model: str
    vector: np.ndarray = field(repr=False)  # float32, L2-normalised


@dataclass(frozen=True, slots=True)
class StoredMemory:
    """A memory with its vector, as the store holds it."""

    memory: Memory
    embedding: np.ndarray = field(repr=False)  # float32, L2-normalised
    # A message's neighbours in its conversation, indexed for keyword search only (weighted
    # below the text; ``gateway.store.sqlite.lexical``). Written with a new memory, not read back.
    context: str | None = field(default=None, repr=False)
    image: StoredImage | None = field(default=None, repr=False)  # with an image memory's insert


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    memory_id: str
    event: str  # ADD | UPDATE | DELETE
    old_text: str | None
    new_text: str | None
    payload: dict[str, Any]
    at: str
    user_id: str = ""  # whose memory it is (kept after a delete: ownership checks need it)


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Exact-match scopes, created_at and occurred_at ranges, and liveness; all given
    conditions must hold. Times are the store's UTC ISO-8601 text."""

    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    created_after: str | None = None  # inclusive, ISO-8601 UTC
    created_before: str | None = None  # exclusive
    occurred_after: str | None = None  # inclusive
    occurred_before: str | None = None  # exclusive
    live_at: str | None = None  # leave out memories expired at this instant

    @property
    def empty(self) -> bool:
        """No condition but (possibly) liveness, which searches apply more cheaply."""
        return not (
            self.agent_id or self.run_id or self.metadata
            or self.created_after or self.created_before
            or self.occurred_after or self.occurred_before
        )


@dataclass(frozen=True, slots=True)
class ScoredMemory:
    """A search result. ``score`` orders the results (higher is better): see
    ``gateway.memory.search`` for what it is in each mode. ``similarity`` is the cosine of
    query and memory in [-1, 1] (None where it was not computed); ``keyword_score`` the BM25
    score (None where keyword search did not return the memory)."""

    memory: Memory
    score: float
    similarity: float | None = None
    keyword_score: float | None = None
