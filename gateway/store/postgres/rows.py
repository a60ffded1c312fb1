"""Rows of the PostgreSQL store and the domain values they map to (this backend's only).

Vectors are little-endian float32 ``bytea`` (as SQLite stores them), metadata and a summary's
sources ``jsonb``, a history event's payload strict compact JSON text; ``filter_conditions``
turns ``SearchFilters`` into SQL on ``memories m``; ``record`` writes one history event.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from gateway.domain.model import Memory, SearchFilters

# The column list and the vector codecs are shared (gateway.store.columns) and re-exported
# here, where this backend's modules import their row helpers.
from gateway.store.columns import (
    COLUMNS as COLUMNS,
)
from gateway.store.columns import (
    blob_vector as blob_vector,
)
from gateway.store.columns import (
    history_from_row,
    memory_from_row,
    strict_json,
)
from gateway.store.columns import (
    vector_blob as vector_blob,
)
from gateway.store.filters import filter_conditions as filters_sql

Conn = AsyncConnection[dict[str, Any]]

M_COLUMNS = ", ".join(f"m.{c}" for c in COLUMNS.split(", "))


def row_to_memory(row: dict[str, Any]) -> Memory:
    return memory_from_row(row, lambda decoded: decoded)  # jsonb comes back decoded


row_to_history = history_from_row
dump_json = strict_json


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
