"""A CLIP migration in PostgreSQL (as the SQLite backend's ``image_versions``): every stored
picture re-embedded into ``image_shadow_vectors``, moved into ``memory_images`` at the switch
in one transaction."""

from __future__ import annotations

import numpy as np

from gateway.store.postgres.rows import Conn, fetch_all, fetch_one, rowcount, vector_blob
from gateway.store.postgres.versions import (
    advance_cursor,
    claim_target,
    drop_target,
    make_target_active,
)
from gateway.store.types import PendingImage

_PENDING = ("SELECT i.memory_id, i.data FROM memory_images i WHERE {} "
            "ORDER BY i.memory_id LIMIT %s")


async def begin(conn: Conn, model: str, target: str, at: str) -> bool:
    """Only when no CLIP migration runs: False then (nothing changed)."""
    return await claim_target(conn, model, target, at, "image_shadow_vectors")


async def pending(conn: Conn, after_id: str, limit: int) -> list[PendingImage]:
    """Pictures after the cursor; past the end, any still without a target vector."""
    rows = await fetch_all(conn, _PENDING.format("i.memory_id > %s"), (after_id, limit))
    if not rows:
        rows = await fetch_all(conn, _PENDING.format(
            "NOT EXISTS (SELECT 1 FROM image_shadow_vectors s "
            "WHERE s.memory_id = i.memory_id)"), (limit,))
    return [PendingImage(r["memory_id"], bytes(r["data"])) for r in rows]


async def put_batch(conn: Conn, model: str, label: str, ids: list[str],
                    vectors: np.ndarray) -> int:
    written = 0
    for memory_id, vector in zip(ids, vectors, strict=True):
        written += await rowcount(
            conn, "INSERT INTO image_shadow_vectors (memory_id, model, embedding) "
            "SELECT %s, %s, %s WHERE EXISTS (SELECT 1 FROM memory_images WHERE memory_id = %s) "
            "ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model, "
            "embedding = excluded.embedding",
            (memory_id, label, vector_blob(vector), memory_id))
    if ids:
        await advance_cursor(conn, model, ids[-1])
    return written


async def progress(conn: Conn) -> tuple[int, int]:
    row = await fetch_one(conn, "SELECT (SELECT count(*) FROM image_shadow_vectors) AS done, "
                          "(SELECT count(*) FROM memory_images) AS total")
    assert row is not None
    return int(row["done"]), int(row["total"])


async def switch(conn: Conn, model: str, target: str, label: str) -> bool:
    """Make the target active with its vectors; False (nothing changed) while a picture
    lacks one. Pictures added meanwhile wait for the lock, then count as missing."""
    await conn.execute("LOCK TABLE memory_images IN SHARE ROW EXCLUSIVE MODE")
    row = await fetch_one(
        conn, "SELECT count(*) AS n FROM memory_images i WHERE NOT EXISTS (SELECT 1 FROM "
        "image_shadow_vectors s WHERE s.memory_id = i.memory_id AND s.model = %s)", (label,))
    if row is not None and row["n"]:
        return False
    await make_target_active(conn, model, target)
    await conn.execute("UPDATE memory_images i SET model = %s, embedding = s.embedding "
                       "FROM image_shadow_vectors s WHERE s.memory_id = i.memory_id", (label,))
    await conn.execute("DELETE FROM image_shadow_vectors")
    return True


async def abandon(conn: Conn, model: str) -> None:
    await drop_target(conn, model, "image_shadow_vectors")
