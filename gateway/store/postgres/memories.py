"""The memories table in PostgreSQL: writes (with their history events and lexical
documents) and reads, on a given connection.

Write functions run inside the caller's transaction (``PostgresStore``: one transaction per
operation), so a plan that combines them (``ingest``, ``archive``) commits all of it or
nothing. The exact-duplicate key (``text_key``) is computed here and stored with the row.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gateway.domain.model import HistoryEvent, Memory, SearchFilters, StoredMemory
from gateway.domain.normalise import text_key
from gateway.store.postgres import feed, images
from gateway.store.postgres.lexical import Lexicon
from gateway.store.postgres.rows import (
    COLUMNS,
    Conn,
    blob_vector,
    dump_json,
    fetch_all,
    fetch_one,
    filter_conditions,
    jsonb,
    record,
    row_to_history,
    row_to_memory,
    vector_blob,
)
from gateway.store.types import ListOrder, ShadowVector


# -- writes ---------------------------------------------------------------------------------
async def put_shadow(conn: Conn, memory_id: str, shadow: ShadowVector) -> None:
    """The memory's vector in the version being migrated to (see ``versions``)."""
    label, vector = shadow
    await conn.execute(
        "INSERT INTO shadow_vectors (memory_id, model, embedding) VALUES (%s, %s, %s) "
        "ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model, "
        "embedding = excluded.embedding", (memory_id, label, vector_blob(vector)))


async def insert_rows(conn: Conn, lexicon: Lexicon, items: list[StoredMemory],
                      shadows: list[ShadowVector] | None = None,
                      payload: dict[str, Any] | None = None) -> None:
    """Insert memories with an ADD event each; ``payload`` adds to each ADD event. One
    ``executemany`` per table (psycopg pipelines it: one round trip, not one per row)."""
    if not items:
        return
    rows, docs, events = [], [], []
    for item in items:
        m = item.memory
        rows.append((m.id, m.user_id, m.agent_id, m.run_id, m.text, jsonb(m.metadata),
                     m.priority, m.created_at, m.updated_at, m.embedding_model, m.occurred_at,
                     m.expires_at, m.role, m.speaker, m.archived_at, m.summary_id,
                     None if m.sources is None else jsonb(list(m.sources)), m.modality,
                     vector_blob(item.embedding), item.context, text_key(m.text)))
        if lexicon.maintained:
            literal, length = lexicon.document(m.user_id, m.text, m.speaker, m.occurred_at,
                                               item.context)
            docs.append((m.id, m.archived_at is not None, literal, length))
        events.append((m.id, m.user_id, "ADD", None, m.text, dump_json(
            {"metadata": m.metadata, "priority": m.priority, **(payload or {})}), m.created_at))
    async with conn.cursor() as cursor:
        await cursor.executemany(
            f"INSERT INTO memories ({COLUMNS}, embedding, context, text_key) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
            "%s)",
            rows)
        for item in items:
            if item.image is not None:
                await images.insert(conn, item.memory.id, item.image)
        if docs:
            await cursor.executemany(
                "INSERT INTO lexical_docs (memory_id, archived, terms, length) "
                "VALUES (%s, %s, %s::tsvector, %s)", docs)
        await cursor.executemany(
            "INSERT INTO history (memory_id, user_id, event, old_text, new_text, payload, at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)", events)
        if shadows is not None:
            await cursor.executemany(
                "INSERT INTO shadow_vectors (memory_id, model, embedding) VALUES (%s, %s, %s) "
                "ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model, "
                "embedding = excluded.embedding",
                [(item.memory.id, label, vector_blob(vector))
                 for item, (label, vector) in zip(items, shadows, strict=True)])


async def update_row(conn: Conn, lexicon: Lexicon, updated: StoredMemory | Memory,
                     previous: Memory, shadow: ShadowVector | None = None,
                     payload: dict[str, Any] | None = None) -> bool:
    """Replace a memory's fields (and vector, with a ``StoredMemory``) if it still matches
    ``previous``; False when it changed or vanished. ``payload`` adds to the UPDATE event."""
    memory = updated.memory if isinstance(updated, StoredMemory) else updated
    sets = ("text = %s, text_key = %s, metadata = %s, priority = %s, updated_at = %s, "
            "embedding_model = %s, occurred_at = %s, expires_at = %s")
    args: list[Any] = [memory.text, text_key(memory.text), jsonb(memory.metadata),
                       memory.priority, memory.updated_at, memory.embedding_model,
                       memory.occurred_at, memory.expires_at]
    if isinstance(updated, StoredMemory):
        sets += ", embedding = %s"
        args.append(vector_blob(updated.embedding))
    row = await fetch_one(
        conn, f"UPDATE memories SET {sets} WHERE id = %s AND updated_at = %s "
        "RETURNING user_id, speaker, context, archived_at",
        [*args, memory.id, previous.updated_at])
    if row is None:
        return False
    await lexicon.write_doc(conn, memory.id, row["user_id"], memory.text, row["speaker"],
                            memory.occurred_at, row["context"], row["archived_at"] is not None)
    event = {"metadata": memory.metadata, "priority": memory.priority, **(payload or {})}
    await record(conn, memory, "UPDATE", previous.text, memory.text, event, memory.updated_at)
    if shadow is not None:
        await put_shadow(conn, memory.id, shadow)
    elif isinstance(updated, StoredMemory):  # a new vector without its target's (a replica
        # not yet following the migration): the target vector is stale, re-embed it
        await conn.execute("DELETE FROM shadow_vectors WHERE memory_id = %s", (memory.id,))
    return True


async def delete_one(conn: Conn, memory_id: str, at: str
                     ) -> tuple[Memory, list[StoredMemory]] | None:
    """Delete one memory; returns it and the sources its deletion restored."""
    memory = await get(conn, memory_id, lock=True)
    if memory is None:
        return None
    return memory, await delete_rows(conn, [memory], at, {})


async def delete_rows(conn: Conn, memories: list[Memory], at: str,
                      payload: dict[str, Any]) -> list[StoredMemory]:
    """Delete memories (a DELETE event each), keeping the archive consistent, as the SQLite
    backend's ``delete_rows``: a deleted archived source leaves its summary's ``sources``; a
    deleted summary's surviving sources are restored, each with an UPDATE event naming it.
    Returns the restored memories with their vectors."""
    gone = {m.id for m in memories}
    for memory in memories:
        await conn.execute("DELETE FROM memories WHERE id = %s", (memory.id,))
        link = {"summary_id": memory.summary_id} if memory.summary_id else {}
        await record(conn, memory, "DELETE", memory.text, None, {**payload, **link}, at)
        if memory.summary_id is not None and memory.summary_id not in gone:
            await conn.execute(
                "UPDATE memories SET sources = coalesce((SELECT jsonb_agg(v) FROM "
                "jsonb_array_elements(sources) v WHERE v <> to_jsonb(%s::text)), '[]') "
                "WHERE id = %s", (memory.id, memory.summary_id))
    restored: list[StoredMemory] = []
    for summary in memories:
        if summary.sources is None:
            continue
        rows = await fetch_all(conn, f"SELECT {COLUMNS}, embedding FROM memories "
                               "WHERE summary_id = %s ORDER BY id FOR UPDATE", (summary.id,))
        for row in rows:
            before = row_to_memory(row)
            after = replace(before, archived_at=None, summary_id=None,
                            updated_at=max(at, before.updated_at))
            await conn.execute("UPDATE memories SET archived_at = NULL, summary_id = NULL, "
                               "updated_at = %s WHERE id = %s", (after.updated_at, after.id))
            await record(conn, after, "UPDATE", before.text, after.text,
                         {**payload, "restored_from": summary.id}, after.updated_at)
            restored.append(StoredMemory(after, blob_vector(row["embedding"])))
    return restored


async def delete_user(conn: Conn, user_id: str, at: str) -> list[str]:
    """Delete every memory of a user (a DELETE event each); returns their ids."""
    rows = await fetch_all(conn, f"DELETE FROM memories WHERE user_id = %s RETURNING {COLUMNS}",
                           (user_id,))
    for row in rows:
        await record(conn, row_to_memory(row), "DELETE", row["text"], None, {}, at)
    await feed.note_user(conn, user_id)
    return [row["id"] for row in rows]


# -- reads ----------------------------------------------------------------------------------
async def get(conn: Conn, memory_id: str, *, lock: bool = False) -> Memory | None:
    row = await fetch_one(conn, f"SELECT {COLUMNS} FROM memories WHERE id = %s"
                          + (" FOR UPDATE" if lock else ""), (memory_id,))
    return None if row is None else row_to_memory(row)


async def get_many(conn: Conn, ids: list[str]) -> dict[str, Memory]:
    rows = await fetch_all(conn, f"SELECT {COLUMNS} FROM memories WHERE id = ANY(%s)",
                           (list(ids),))
    return {row["id"]: row_to_memory(row) for row in rows}


async def list_page(
    conn: Conn, user_id: str, limit: int, after_id: str | None, *,
    order_by: ListOrder = "id", after_occurred: str | None = None,
    descending: bool = False, live_at: str | None = None, archived: bool = False,
) -> list[Memory]:
    """Keyset paging in id or (occurred_at, id) order (see ``Store.list_page``)."""
    keys = ["m.id"] if order_by == "id" else ["m.occurred_at", "m.id"]
    direction, beyond = ("DESC", "<") if descending else ("ASC", ">")
    where, args = ["m.user_id = %s"], [user_id]
    if after_id is not None:
        if order_by == "id":
            where.append(f"m.id {beyond} %s")
            args.append(after_id)
        else:
            where.append(f"(m.occurred_at, m.id) {beyond} (%s, %s)")
            args.extend([after_occurred or "", after_id])
    if live_at is not None:
        where.append("(m.expires_at IS NULL OR m.expires_at > %s)")
        args.append(live_at)
    if not archived:
        where.append("m.archived_at IS NULL")
    order = ", ".join(f"{key} {direction}" for key in keys)
    rows = await fetch_all(conn, f"SELECT {COLUMNS} FROM memories m "
                           f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT %s",
                           [*args, limit])
    return [row_to_memory(row) for row in rows]


async def history(conn: Conn, memory_id: str) -> list[HistoryEvent]:
    rows = await fetch_all(
        conn, "SELECT memory_id, event, old_text, new_text, payload, at, user_id FROM history "
        "WHERE memory_id = %s ORDER BY seq", (memory_id,))
    return [row_to_history(row) for row in rows]


async def filter_ids(conn: Conn, user_id: str, filters: SearchFilters) -> set[str]:
    where, args = filter_conditions(user_id, filters)
    rows = await fetch_all(conn, f"SELECT m.id FROM memories m WHERE {' AND '.join(where)}",
                           args)
    return {row["id"] for row in rows}


async def expired_ids(conn: Conn, user_id: str, at: str, limit: int) -> set[str]:
    rows = await fetch_all(
        conn, "SELECT id FROM memories WHERE user_id = %s AND expires_at IS NOT NULL "
        "AND expires_at <= %s AND archived_at IS NULL LIMIT %s", (user_id, at, limit))
    return {row["id"] for row in rows}


async def embeddings(conn: Conn, ids: list[str]) -> dict[str, tuple[str, np.ndarray]]:
    rows = await fetch_all(conn, "SELECT id, embedding_model, embedding FROM memories "
                           "WHERE id = ANY(%s)", (list(ids),))
    return {r["id"]: (r["embedding_model"], blob_vector(r["embedding"])) for r in rows}


async def existing_ids(conn: Conn, ids: list[str]) -> set[str]:
    rows = await fetch_all(conn, "SELECT id FROM memories WHERE id = ANY(%s)", (list(ids),))
    return {row["id"] for row in rows}


async def count(conn: Conn) -> int:
    row = await fetch_one(conn, "SELECT count(*) AS n FROM memories")
    return int(row["n"]) if row else 0


async def user_vectors(conn: Conn, user_id: str) -> tuple[list[str], np.ndarray]:
    rows = await fetch_all(
        conn, "SELECT id, embedding FROM memories WHERE user_id = %s AND archived_at IS NULL "
        "ORDER BY id", (user_id,))
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    return [r["id"] for r in rows], np.stack([blob_vector(r["embedding"]) for r in rows])


async def vectors(conn: Conn, batch: int) -> list[tuple[str, str, np.ndarray]]:
    out: list[tuple[str, str, np.ndarray]] = []
    async with conn.cursor(name="vectors") as cursor:
        await cursor.execute("SELECT user_id, id, embedding FROM memories "
                             "WHERE archived_at IS NULL ORDER BY user_id")
        while rows := await cursor.fetchmany(batch):
            out.extend((r["user_id"], r["id"], blob_vector(r["embedding"])) for r in rows)
    return out
