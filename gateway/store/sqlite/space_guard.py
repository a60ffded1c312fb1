"""The store refuses a vector outside the live embedding spaces (migration 14).

A replica that has not yet followed a model switch made by another one would store a vector
of the old version; the switch updates ``model_state`` first, so triggers that compare each
written label with it refuse such a write in its own transaction (nothing is written). The
store raises ``StaleVersion``; the service follows the switch and writes again in the new
space. A memory's label must be its model's active version; a shadow vector's, the model's
migration target. A label whose model has no recorded state is not checked (a fresh store).
A metadata-only update keeps the row's label and vector and is never refused.
"""

from __future__ import annotations

import sqlite3

# The message the triggers raise; ``faults`` turns it into ``StaleVersion``.
REFUSED = "stale embedding version"

_STALE_MEMORY = """
EXISTS (SELECT 1 FROM model_state s
        WHERE substr(NEW.embedding_model, 1, length(s.model) + 1) = s.model || ':'
          AND NEW.embedding_model <> s.model || ':' || s.active)
"""
_STALE_SHADOW = """
EXISTS (SELECT 1 FROM model_state s
        WHERE substr(NEW.model, 1, length(s.model) + 1) = s.model || ':'
          AND NEW.model IS NOT s.model || ':' || s.target)
"""

SCHEMA = f"""
CREATE TRIGGER memory_in_active_space BEFORE INSERT ON memories
WHEN {_STALE_MEMORY}
BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END;
CREATE TRIGGER memory_stays_in_active_space BEFORE UPDATE OF embedding, embedding_model
ON memories
WHEN (NEW.embedding_model IS NOT OLD.embedding_model OR NEW.embedding IS NOT OLD.embedding)
  AND {_STALE_MEMORY}
BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END;
CREATE TRIGGER shadow_in_target_space BEFORE INSERT ON shadow_vectors
WHEN {_STALE_SHADOW}
BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END;
CREATE TRIGGER shadow_stays_in_target_space BEFORE UPDATE ON shadow_vectors
WHEN {_STALE_SHADOW}
BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END;
"""


def refused(exc: sqlite3.Error) -> bool:
    """Was ``exc`` a trigger's refusal of a vector in a stale space?"""
    return isinstance(exc, sqlite3.IntegrityError) and str(exc) == REFUSED
