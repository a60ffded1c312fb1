"""Rows of the SQLite store and the domain values they map to (public to this backend only).

Vectors are little-endian float32 blobs, metadata strict compact JSON; ``filter_conditions``
turns ``SearchFilters`` into SQL on ``memories m``; ``record`` writes one history event.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

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


def row_to_memory(row: sqlite3.Row) -> Memory:
    return memory_from_row(row, json.loads)  # type: ignore[arg-type]


row_to_history = history_from_row
dump_metadata = strict_json


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
