"""Searching archived memories, on request (``include_archived``).

Archived memories (sources folded into a summary by the ``compress`` job) are in neither the
vector index nor the live lexical index, so a default search never pays for them. Asked for,
they are scored exactly: the cosine of the query with each archived memory's stored vector,
and BM25 over the archive's own lexical index. Each list is merged with the live one by score
and cut to the pool; the search then fuses, reranks and ranks as it always does.
"""

from __future__ import annotations

import numpy as np


def merge_ranked(live: list[tuple[str, float]], archived: list[tuple[str, float]],
                 pool: int) -> list[tuple[str, float]]:
    """One (id, score) list, best first, of at most ``pool`` entries."""
    return sorted([*live, *archived], key=lambda hit: -hit[1])[:pool]


def exact_cosines(rows: list[tuple[str, str, np.ndarray]], label: str, vector: np.ndarray,
                  pool: int) -> list[tuple[str, float]]:
    """The ``pool`` best (id, cosine) of stored (id, model label, vector) rows; rows embedded
    by another model than ``label`` (during a migration) cannot be compared and are left out.
    CPU work: call it off the event loop."""
    usable = [(memory_id, row) for memory_id, model, row in rows
              if model == label and row.shape == vector.shape]
    if not usable:
        return []
    scores = np.stack([row for _, row in usable]) @ vector
    best = np.argsort(-scores, kind="stable")[:pool]
    return [(usable[i][0], float(scores[i])) for i in best]
