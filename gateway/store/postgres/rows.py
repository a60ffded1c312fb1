"""Rows of the PostgreSQL store and the domain values they map to (this backend's only).

Vectors are little-endian float32 ``bytea`` (as SQLite stores them), metadata and a summary's
sources ``jsonb``, a history event's payload strict compact JSON text; ``filter_conditions``
turns ``SearchFilters`` into SQL on ``memories m``; ``record`` writes one history event.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from gateway.domain.model import HistoryEvent, Memory, SearchFilters
from gateway.store.filters import filter_conditions as filters_sql

Conn = AsyncConnection[dict[str, Any]]

COLUMNS = (
    "id, user_id, agent_id, run_id, text, metadata, priority, created_at, updated_at, "
    "embedding_model, occurred_at, expires_at, role, speaker, archived_at, summary_id, sources, "
    "modality"
)
M_COLUMNS = ", ".join(f"m.{c}" for c in COLUMNS.split(", "))


def row_to_memory(row: dict[str, Any]) -> Memory:
    return Memory(
        id=row["id"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        run_id=row["run_id"],
        text=row["text"],
        metadata=row["metadata"],
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
        sources=None if row["sources"] is None else tuple(row["sources"]),
        modality=row["modality"],
    )


def row_to_history(row: dict[str, Any]) -> HistoryEvent:
    return HistoryEvent(row["memory_id"], row["event"], row["old_text"], row["new_text"],
                        json.loads(row["payload"]), row["at"], row["user_id"])


def vector_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def blob_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def dump_json(value: Any) -> str:
    """Strict JSON (no NaN/Infinity), compact and key-sorted so equal objects compare equal."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"), sort_keys=True)


def jsonb(value: Any) -> Jsonb:
    return Jsonb(value, dumps=dump_json)


async def record(conn: Conn, memory: Memory, event: str, old: str | None, new: str | None,
                 payload: dict[str, Any], at: str) -> None:
    """One history event of ``memory`` (ADD, UPDATE or DELETE)."""
    await conn.execute(
        "INSERT INTO history (memory_id, user_id, event, old_text, new_text, payload, at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (memory.id, memory.user_id, event, old, new, dump_json(payload), at))


def _metadata_condition(key: str, value: object) -> tuple[str, list[object]]:
    """One exact-match condition on a top-level metadata key, safe for any key text."""
    if value is None:
        return "jsonb_typeof(m.metadata -> %s) = 'null'", [key]
    if isinstance(value, bool):
        return "m.metadata -> %s = %s::jsonb", [key, "true" if value else "false"]
    if isinstance(value, int | float):
        return ("CASE WHEN jsonb_typeof(m.metadata -> %s) = 'number' "
                "THEN (m.metadata ->> %s)::numeric = %s::numeric ELSE FALSE END",
                [key, key, str(value)])
    return ("(jsonb_typeof(m.metadata -> %s) = 'string' AND m.metadata ->> %s = %s)",
            [key, key, value])


def filter_conditions(user_id: str, filters: SearchFilters) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``memories m`` for one user and every given filter."""
    return filters_sql(user_id, filters, "%s", _metadata_condition)


async def fetch_all(conn: Conn, sql: str, args: Any = None) -> list[dict[str, Any]]:
    return await (await conn.execute(sql, args)).fetchall()


async def fetch_one(conn: Conn, sql: str, args: Any = None) -> dict[str, Any] | None:
    return await (await conn.execute(sql, args)).fetchone()


async def rowcount(conn: Conn, sql: str, args: Any = None) -> int:
    return (await conn.execute(sql, args)).rowcount
