"""The memories table: writes (with their history events) and reads, on a given connection.

Write functions run inside the caller's transaction (``SQLiteStore.transaction``), so a plan
that combines them (``ingest``, ``archive``) commits all of it or nothing.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from typing import Any

import numpy as np

from gateway.domain.model import HistoryEvent, Memory, SearchFilters, StoredMemory
from gateway.store.sqlite import feed, images
from gateway.store.sqlite.rows import (
    COLUMNS,
    blob_vector,
    dump_metadata,
    filter_conditions,
    in_chunks,
    record,
    row_to_history,
    row_to_memory,
    vector_blob,
)
from gateway.store.types import ListOrder, ShadowVector


# -- writes ---------------------------------------------------------------------------------
def put_shadow(conn: sqlite3.Connection, memory_id: str, shadow: ShadowVector) -> None:
    """The memory's vector in the version being migrated to (see ``versions``)."""
    label, vector = shadow
    conn.execute(
        "INSERT OR REPLACE INTO shadow_vectors (memory_id, model, embedding) VALUES (?, ?, ?)",
        (memory_id, label, vector_blob(vector)),
    )


def insert_rows(
    conn: sqlite3.Connection, items: list[StoredMemory],
    shadows: list[ShadowVector] | None = None, payload: dict[str, Any] | None = None,
) -> None:
    """Insert memories with an ADD event each; ``payload`` adds to each ADD event."""
    for position, item in enumerate(items):
        m = item.memory
        conn.execute(
            f"INSERT INTO memories ({COLUMNS}, embedding, context) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (m.id, m.user_id, m.agent_id, m.run_id, m.text, dump_metadata(m.metadata),
             m.priority, m.created_at, m.updated_at, m.embedding_model, m.occurred_at,
             m.expires_at, m.role, m.speaker, None, m.summary_id,
             None if m.sources is None else json.dumps(list(m.sources)), m.modality,
             vector_blob(item.embedding), item.context),
        )
        if item.image is not None:
            images.insert(conn, m.id, item.image)
        if m.archived_at is not None:  # an imported archived row: the move trigger takes
            conn.execute(  # it from the live lexical index to the archive's
                "UPDATE memories SET archived_at = ? WHERE id = ?", (m.archived_at, m.id))
        record(conn, m, "ADD", None, m.text, {"metadata": m.metadata,
               "priority": m.priority, **(payload or {})}, m.created_at)
        if shadows is not None:
            put_shadow(conn, m.id, shadows[position])


def update_row(
    conn: sqlite3.Connection, updated: StoredMemory | Memory, previous: Memory,
    shadow: ShadowVector | None = None, payload: dict[str, Any] | None = None,
) -> bool:
    """Replace a memory's fields (and vector, with a ``StoredMemory``) if it still matches
    ``previous``; False when it changed or vanished. ``payload`` adds to the UPDATE event."""
    memory = updated.memory if isinstance(updated, StoredMemory) else updated
    sets = ("text = ?, metadata = ?, priority = ?, updated_at = ?, embedding_model = ?, "
            "occurred_at = ?, expires_at = ?")
    args: list[Any] = [memory.text, dump_metadata(memory.metadata), memory.priority,
                       memory.updated_at, memory.embedding_model, memory.occurred_at,
                       memory.expires_at]
    if isinstance(updated, StoredMemory):
        sets += ", embedding = ?"
        args.append(vector_blob(updated.embedding))
    cursor = conn.execute(
        f"UPDATE memories SET {sets} WHERE id = ? AND updated_at = ?",
        [*args, memory.id, previous.updated_at],
    )
    if cursor.rowcount != 1:
        return False
    event = {"metadata": memory.metadata, "priority": memory.priority, **(payload or {})}
    record(conn, memory, "UPDATE", previous.text, memory.text, event, memory.updated_at)
    if shadow is not None:
        put_shadow(conn, memory.id, shadow)
    elif isinstance(updated, StoredMemory):  # a new vector without its target's (a gateway
        # not yet following the migration): the target vector is stale, re-embed it
        conn.execute("DELETE FROM shadow_vectors WHERE memory_id = ?", (memory.id,))
    return True


def delete_one(conn: sqlite3.Connection, memory_id: str, at: str
               ) -> tuple[Memory, list[StoredMemory]] | None:
    """Delete one memory; returns it and the sources its deletion restored."""
    memory = get(conn, memory_id)
    if memory is None:
        return None
    return memory, delete_rows(conn, [memory], at, {})


def delete_rows(conn: sqlite3.Connection, memories: list[Memory], at: str,
                payload: dict[str, Any]) -> list[StoredMemory]:
    """Delete memories (a DELETE event each), keeping the archive consistent: a deleted
    archived source leaves its summary's ``sources``; a deleted summary's surviving sources
    are restored (no longer archived: nothing is lost with the summary), each with an UPDATE
    event naming it. Returns the restored memories with their vectors, for the caller to put
    back into the vector index."""
    gone = {m.id for m in memories}
    for memory in memories:
        conn.execute("DELETE FROM memories WHERE id = ?", (memory.id,))
        link = {"summary_id": memory.summary_id} if memory.summary_id else {}
        record(conn, memory, "DELETE", memory.text, None, {**payload, **link}, at)
        if memory.summary_id is not None and memory.summary_id not in gone:
            conn.execute(
                "UPDATE memories SET sources = (SELECT json_group_array(j.value) FROM "
                "json_each(memories.sources) j WHERE j.value <> ?) WHERE id = ?",
                (memory.id, memory.summary_id))
    restored: list[StoredMemory] = []
    for summary in memories:
        if summary.sources is None:
            continue
        rows = conn.execute(f"SELECT {COLUMNS}, embedding FROM memories "
                            "WHERE summary_id = ? ORDER BY id", (summary.id,)).fetchall()
        for row in rows:
            before = row_to_memory(row)
            after = replace(before, archived_at=None, summary_id=None,
                            updated_at=max(at, before.updated_at))
            conn.execute("UPDATE memories SET archived_at = NULL, summary_id = NULL, "
                         "updated_at = ? WHERE id = ?", (after.updated_at, after.id))
            record(conn, after, "UPDATE", before.text, after.text,
                   {**payload, "restored_from": summary.id}, after.updated_at)
            restored.append(StoredMemory(after, blob_vector(row["embedding"])))
    return restored


def delete_user(conn: sqlite3.Connection, user_id: str, at: str) -> list[str]:
    """Delete every memory of a user (a DELETE event each); returns their ids."""
    rows = conn.execute(f"SELECT {COLUMNS} FROM memories WHERE user_id = ?",
                        (user_id,)).fetchall()
    for row in rows:
        record(conn, row_to_memory(row), "DELETE", row["text"], None, {}, at)
    conn.execute("DELETE FROM memories WHERE user_id = ?", (user_id,))
    feed.note_user(conn, user_id)
    return [row["id"] for row in rows]


# -- reads ----------------------------------------------------------------------------------
def get(conn: sqlite3.Connection, memory_id: str) -> Memory | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM memories WHERE id = ?", (memory_id,)).fetchone()
    return None if row is None else row_to_memory(row)


def get_many(conn: sqlite3.Connection, ids: list[str]) -> dict[str, Memory]:
    found: dict[str, Memory] = {}
    for marks, chunk in in_chunks(ids):
        for row in conn.execute(f"SELECT {COLUMNS} FROM memories WHERE id IN ({marks})", chunk):
            found[row["id"]] = row_to_memory(row)
    return found


def list_page(
    conn: sqlite3.Connection, user_id: str, limit: int, after_id: str | None, *,
    order_by: ListOrder = "id", after_occurred: str | None = None,
    descending: bool = False, live_at: str | None = None, archived: bool = False,
) -> list[Memory]:
    """Keyset paging in id or (occurred_at, id) order (see ``Store.list_page``)."""
    keys = "m.id" if order_by == "id" else "m.occurred_at, m.id"
    direction, beyond = ("DESC", "<") if descending else ("ASC", ">")
    where, args = ["m.user_id = ?"], [user_id]
    if after_id is not None:
        if order_by == "id":
            where.append(f"m.id {beyond} ?")
            args.append(after_id)
        else:
            where.append(f"(m.occurred_at, m.id) {beyond} (?, ?)")
            args.extend([after_occurred or "", after_id])
    if live_at is not None:
        where.append("(m.expires_at IS NULL OR m.expires_at > ?)")
        args.append(live_at)
    if not archived:
        where.append("m.archived_at IS NULL")
    order = ", ".join(f"{key} {direction}" for key in keys.split(", "))
    rows = conn.execute(f"SELECT {COLUMNS} FROM memories m WHERE {' AND '.join(where)} "
                        f"ORDER BY {order} LIMIT ?", [*args, limit]).fetchall()
    return [row_to_memory(row) for row in rows]


def history(conn: sqlite3.Connection, memory_id: str) -> list[HistoryEvent]:
    rows = conn.execute(
        "SELECT memory_id, event, old_text, new_text, payload, at, user_id FROM history "
        "WHERE memory_id = ? ORDER BY seq", (memory_id,)).fetchall()
    return [row_to_history(row) for row in rows]


def filter_ids(conn: sqlite3.Connection, user_id: str, filters: SearchFilters) -> set[str]:
    where, args = filter_conditions(user_id, filters)
    return {row[0] for row in conn.execute(
        f"SELECT m.id FROM memories m WHERE {' AND '.join(where)}", args)}


def expired_ids(conn: sqlite3.Connection, user_id: str, at: str, limit: int) -> set[str]:
    rows = conn.execute(
        "SELECT id FROM memories WHERE user_id = ? AND expires_at IS NOT NULL "
        "AND expires_at <= ? AND archived_at IS NULL LIMIT ?", (user_id, at, limit))
    return {row[0] for row in rows}


def embeddings(conn: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[str, np.ndarray]]:
    found: dict[str, tuple[str, np.ndarray]] = {}
    for marks, chunk in in_chunks(ids):
        for row in conn.execute(
            f"SELECT id, embedding_model, embedding FROM memories WHERE id IN ({marks})", chunk
        ):
            found[row[0]] = (row[1], blob_vector(row[2]))
    return found


def existing_ids(conn: sqlite3.Connection, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for marks, chunk in in_chunks(ids):
        found.update(row[0] for row in conn.execute(
            f"SELECT id FROM memories WHERE id IN ({marks})", chunk))
    return found


def count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM memories").fetchone()[0])


def user_vectors(conn: sqlite3.Connection, user_id: str) -> tuple[list[str], np.ndarray]:
    rows = conn.execute(
        "SELECT id, embedding FROM memories WHERE user_id = ? AND archived_at IS NULL "
        "ORDER BY id", (user_id,)).fetchall()
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    return [r[0] for r in rows], np.stack([blob_vector(r[1]) for r in rows])


def vectors(conn: sqlite3.Connection, batch: int) -> list[tuple[str, str, np.ndarray]]:
    cursor = conn.execute("SELECT user_id, id, embedding FROM memories "
                          "WHERE archived_at IS NULL ORDER BY user_id")
    out: list[tuple[str, str, np.ndarray]] = []
    while rows := cursor.fetchmany(batch):
        out.extend((row[0], row[1], blob_vector(row[2])) for row in rows)
    return out
