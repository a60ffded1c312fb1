"""The ``VectorIndex`` contract every backend (exact numpy, HNSW, CAGRA) implements.

Vectors are partitioned into collections (one per user): a search never crosses collections.
Scores are cosine similarities in [-1, 1], higher is better; callers pass L2-normalised
vectors, so cosine equals the inner product.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float  # cosine similarity in [-1, 1], higher is better


@runtime_checkable
class VectorIndex(Protocol):
    @property
    def dim(self) -> int | None:
        """Dimension of the stored vectors; None until the first add."""

    def add(self, collection: str, ids: list[str], vectors: np.ndarray) -> None:
        """Insert or replace rows; ``vectors`` is float32 ``[len(ids), dim]``, L2-normalised."""

    def remove(self, collection: str, ids: Iterable[str]) -> int:
        """Forget the ids (missing ones are ignored); returns how many were removed."""

    def drop(self, collection: str) -> int:
        """Forget a whole collection; returns how many rows it held."""

    def search(
        self, collection: str, query: np.ndarray, k: int, *, allow: Collection[str] | None = None
    ) -> list[Hit]:
        """The ``k`` best rows for one normalised query, best first, restricted to ``allow``."""

    def search_batch(
        self, collection: str, queries: np.ndarray, k: int, *, allow: Collection[str] | None = None
    ) -> list[list[Hit]]:
        """``search`` for each row of ``queries`` ``[q, dim]`` in one backend call."""

    def needs_load(self, collection: str) -> bool:
        """True when the collection may be in the store but is not held here (evicted)."""

    def load(self, collection: str, ids: list[str], vectors: np.ndarray) -> None:
        """(Re)place a collection with the rows the store holds for it."""

    def size(self, collection: str | None = None) -> int:
        """Live rows in one collection, or in all of them."""

    def rebuild(self, rows: Iterable[tuple[str, str, np.ndarray]]) -> int:
        """Replace the whole content from (collection, id, vector) rows; returns the row count."""
