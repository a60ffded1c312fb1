"""Domain types: plain frozen dataclasses, apart from the wire schemas in ``gateway.api``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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


@dataclass(frozen=True, slots=True)
class StoredMemory:
    """A memory with its vector, as the store holds it."""

    memory: Memory
    embedding: np.ndarray = field(repr=False)  # float32, L2-normalised


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
    """Exact-match scopes and a created_at range; all given conditions must hold."""

    agent_id: str | None = None
    run_id: str | None = None
    metadata: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    created_after: str | None = None  # inclusive, ISO-8601 UTC
    created_before: str | None = None  # exclusive

    @property
    def empty(self) -> bool:
        return not (
            self.agent_id or self.run_id or self.metadata
            or self.created_after or self.created_before
        )


@dataclass(frozen=True, slots=True)
class ScoredMemory:
    """A search result. ``score`` orders the results: the cosine similarity in [-1, 1], or the
    reranker's raw logit when the search was reranked; ``similarity`` is then the cosine that
    found it (None: the same as ``score``). Higher is better for both."""

    memory: Memory
    score: float
    similarity: float | None = None
