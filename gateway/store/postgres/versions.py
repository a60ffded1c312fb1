"""Model-version state in PostgreSQL: the active version, and an embedder migration (as the
SQLite backend's ``versions``: the switch copies the shadow vectors in one transaction)."""

from __future__ import annotations

import numpy as np

from gateway.store.postgres.rows import (
    Conn,
    blob_vector,
    fetch_all,
    fetch_one,
    rowcount,
    vector_blob,
)
from gateway.store.types import ModelState, PendingMemory


async def state(conn: Conn, model: str) -> ModelState | None:
    row = await fetch_one(conn, "SELECT model, active, target, cursor, started_at "
                          "FROM model_state WHERE model = %s", (model,))
    return None if row is None else ModelState(row["model"], row["active"], row["target"],
                                                row["cursor"], row["started_at"])


async def set_active(conn: Conn, model: str, version: str) -> None:
    await conn.execute("INSERT INTO model_state (model, active) VALUES (%s, %s) "
                       "ON CONFLICT (model) DO UPDATE SET active = excluded.active",
                       (model, version))


async def adopt(conn: Conn, models: dict[str, str]) -> dict[str, str]:
    for model, active in models.items():
        await conn.execute("INSERT INTO model_state (model, active) VALUES (%s, %s) "
                           "ON CONFLICT (model) DO NOTHING", (model, active))
    rows = await fetch_all(conn, "SELECT model, active FROM model_state")
    return {r["model"]: r["active"] for r in rows}


# A migration's life in ``model_state``, shared by the embedder's (``shadow_vectors``) and
# CLIP's (``image_versions``: ``image_shadow_vectors``); ``shadow`` is one of those tables.
async def claim_target(conn: Conn, model: str, target: str, at: str, shadow: str) -> bool:
    """Only when no migration of ``model`` runs (one begun by another replica wins)."""
    if not await rowcount(conn, "UPDATE model_state SET target = %s, cursor = '', "
                          "started_at = %s WHERE model = %s AND target IS NULL",
                          (target, at, model)):
        return False
    await conn.execute(f"DELETE FROM {shadow}")
    return True


async def advance_cursor(conn: Conn, model: str, last_id: str) -> None:
    await conn.execute("UPDATE model_state SET cursor = greatest(cursor, %s) "
                       "WHERE model = %s", (last_id, model))


async def make_target_active(conn: Conn, model: str, target: str) -> None:
    await conn.execute("UPDATE model_state SET active = %s, target = NULL, cursor = '', "
                       "started_at = NULL WHERE model = %s", (target, model))


async def drop_target(conn: Conn, model: str, shadow: str) -> None:
    await conn.execute(f"DELETE FROM {shadow}")
    await conn.execute("UPDATE model_state SET target = NULL, cursor = '', started_at = NULL "
                       "WHERE model = %s", (model,))


async def begin(conn: Conn, model: str, target: str, at: str) -> bool:
    return await claim_target(conn, model, target, at, "shadow_vectors")


_PENDING = ("SELECT id, user_id, coalesce(speaker || ': ', '') || text AS said, updated_at, "
            "archived_at IS NOT NULL AS archived FROM memories m WHERE {} ORDER BY id LIMIT %s")


async def pending(conn: Conn, after_id: str, limit: int) -> list[PendingMemory]:
    """After the cursor; past the end, any memory still without a target vector (one
    written or changed before its gateway followed the migration)."""
    rows = await fetch_all(conn, _PENDING.format("id > %s"), (after_id, limit))
    if not rows:
        rows = await fetch_all(conn, _PENDING.format(
            "NOT EXISTS (SELECT 1 FROM shadow_vectors s WHERE s.memory_id = m.id)"), (limit,))
    return [PendingMemory(r["id"], r["user_id"], r["said"], r["updated_at"], r["archived"])
            for r in rows]


async def put_batch(conn: Conn, model: str, label: str, batch: list[PendingMemory],
                    vectors: np.ndarray) -> list[PendingMemory]:
    written = []
    for item, vector in zip(batch, vectors, strict=True):
        if await rowcount(
            conn, "INSERT INTO shadow_vectors (memory_id, model, embedding) "
            "SELECT %s, %s, %s WHERE EXISTS "
            "(SELECT 1 FROM memories WHERE id = %s AND updated_at = %s) "
            "ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model, "
            "embedding = excluded.embedding",
            (item.id, label, vector_blob(vector), item.id, item.updated_at)) == 1:
            written.append(item)
    if batch:
        await advance_cursor(conn, model, batch[-1].id)
    return written


async def shadow_vectors(conn: Conn) -> list[tuple[str, str, np.ndarray]]:
    rows = await fetch_all(
        conn, "SELECT m.user_id, s.memory_id, s.embedding FROM shadow_vectors s "
        "JOIN memories m ON m.id = s.memory_id WHERE m.archived_at IS NULL")
    return [(r["user_id"], r["memory_id"], blob_vector(r["embedding"])) for r in rows]


async def progress(conn: Conn) -> tuple[int, int]:
    row = await fetch_one(conn, "SELECT (SELECT count(*) FROM shadow_vectors) AS done, "
                          "(SELECT count(*) FROM memories) AS total")
    assert row is not None
    return int(row["done"]), int(row["total"])


async def switch(conn: Conn, model: str, target: str, label: str) -> bool:
    """Make the target active; False (nothing changed) if a row lacks a target vector."""
    await conn.execute("LOCK TABLE memories IN SHARE ROW EXCLUSIVE MODE")
    row = await fetch_one(
        conn, "SELECT count(*) AS n FROM memories m WHERE NOT EXISTS "
        "(SELECT 1 FROM shadow_vectors s WHERE s.memory_id = m.id AND s.model = %s)", (label,))
    if row is not None and row["n"]:
        return False
    # The state first: the store's guard (``space_guard``) checks each row against it.
    await make_target_active(conn, model, target)
    await conn.execute("UPDATE memories m SET embedding_model = %s, embedding = s.embedding "
                       "FROM shadow_vectors s WHERE s.memory_id = m.id", (label,))
    await conn.execute("DELETE FROM shadow_vectors")
    return True


async def abandon(conn: Conn, model: str) -> None:
    await drop_target(conn, model, "shadow_vectors")
