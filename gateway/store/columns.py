"""What both store backends' rows hold and how they map to domain values.

The memory columns in their order, a memory row to a ``Memory`` (a backend only says how its
JSON columns come back: text in SQLite, already decoded from ``jsonb`` in PostgreSQL), a
history row to a ``HistoryEvent``, vectors as little-endian float32 bytes, and the strict JSON
both write, so the two backends cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from gateway.domain.model import HistoryEvent, Memory

COLUMNS = (
    "id, user_id, agent_id, run_id, text, metadata, priority, created_at, updated_at, "
    "embedding_model, occurred_at, expires_at, role, speaker, archived_at, summary_id, sources, "
    "modality"
)


def memory_from_row(row: Mapping[str, Any], json_column: Callable[[Any], Any]) -> Memory:
    """A ``Memory`` from a row holding ``COLUMNS``; ``json_column`` decodes metadata and
    sources as the backend returns them."""
    sources = row["sources"]
    return Memory(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        run_id=row["run_id"],
        text=row["text"],
        metadata=json_column(row["metadata"]),
        priority=row["priority"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        embedding_model=row["embedding_model"],
        occurred_at=row["occurred_at"],
        expires_at=row["expires_at"],
        role=row["role"],
        speaker=row["speaker"],
        archived_at=row["archived_at"],
        summary_id=row["summary_id"],
        sources=None if sources is None else tuple(json_column(sources)),
        modality=row["modality"],
    )


def history_from_row(row: Mapping[str, Any]) -> HistoryEvent:
    return HistoryEvent(row["memory_id"], row["event"], row["old_text"], row["new_text"],
                        json.loads(row["payload"]), row["at"], row["user_id"])


def vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def blob_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def strict_json(value: Any) -> str:
    """Strict JSON (no NaN/Infinity), compact and key-sorted so equal objects compare equal."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"), sort_keys=True)
