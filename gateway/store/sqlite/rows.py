"""Rows of the SQLite store and the domain values they map to (public to this backend only).

Vectors are little-endian float32 blobs, metadata strict compact JSON; ``filter_conditions``
turns ``SearchFilters`` into SQL on ``memories m``; ``record`` writes one history event.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import numpy as np

from gateway.domain.model import HistoryEvent, Memory, SearchFilters
from gateway.store.filters import filter_conditions as filters_sql

COLUMNS = (
    "id, user_id, agent_id, run_id, text, metadata, priority, created_at, updated_at, "
    "embedding_model, occurred_at, expires_at, role, speaker, archived_at, summary_id, sources, "
    "modality"
)


def row_to_memory(row: sqlite3.Row) -> Memory:
    return Memory(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        run_id=row["run_id"],
        text=row["text"],
        metadata=json.loads(row["metadata"]),
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
        sources=None if row["sources"] is None else tuple(json.loads(row["sources"])),
        modality=row["modality"],
    )


def row_to_history(row: sqlite3.Row) -> HistoryEvent:
    return HistoryEvent(row["memory_id"], row["event"], row["old_text"], row["new_text"],
                        json.loads(row["payload"]), row["at"], row["user_id"])


def vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def blob_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def dump_metadata(metadata: dict[str, Any]) -> str:
    """Strict JSON (no NaN/Infinity), compact and key-sorted so equal objects compare equal."""
    return json.dumps(metadata, allow_nan=False, separators=(",", ":"), sort_keys=True)


def record(
    conn: sqlite3.Connection, memory: Memory, event: str, old: str | None, new: str | None,
    payload: dict[str, Any], at: str,
) -> None:
    """One history event of ``memory`` (ADD, UPDATE or DELETE)."""
    conn.execute(
        "INSERT INTO history (memory_id, user_id, event, old_text, new_text, payload, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (memory.id, memory.user_id, event, old, new, dump_metadata(payload), at),
    )


def _metadata_condition(key: str, value: object) -> tuple[str, list[object]]:
    """One exact-match condition on a top-level metadata key, safe for any key text."""
    base = "EXISTS (SELECT 1 FROM json_each(m.metadata) j WHERE j.key = ?"
    if value is None:
        return base + " AND j.type = 'null')", [key]
    if isinstance(value, bool):
        return base + " AND j.type = ?)", [key, "true" if value else "false"]
    if isinstance(value, int | float):
        return base + " AND j.type IN ('integer', 'real') AND j.value = ?)", [key, value]
    return base + " AND j.type = 'text' AND j.value = ?)", [key, value]


def filter_conditions(user_id: str, filters: SearchFilters) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``memories m`` for one user and every given filter."""
    return filters_sql(user_id, filters, "?", _metadata_condition)


def in_chunks(ids: list[str], size: int = 500) -> list[tuple[str, list[str]]]:
    """(``?,?,...`` marks, ids) per chunk of at most ``size``: SQLite's host parameter cap."""
    chunks = [ids[start:start + size] for start in range(0, len(ids), size)]
    return [(",".join("?" * len(chunk)), chunk) for chunk in chunks]
