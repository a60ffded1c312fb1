"""Image memories' pictures and CLIP vectors (``memory_images``), on a given connection.

As in the SQLite store: written in its memory's transaction, removed with it by the foreign
key, read straight from the table by searches.
"""

from __future__ import annotations

import numpy as np

from gateway.domain.model import SearchFilters, StoredImage
from gateway.store.postgres.rows import (
    Conn,
    blob_vector,
    fetch_all,
    fetch_one,
    filter_conditions,
    vector_blob,
)


async def insert(conn: Conn, memory_id: str, image: StoredImage) -> None:
    await conn.execute(
        "INSERT INTO memory_images (memory_id, mime, width, height, data, model, embedding) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (memory_id, image.mime, image.width, image.height, image.data, image.model,
         vector_blob(image.vector)))


async def get(conn: Conn, memory_id: str) -> StoredImage | None:
    row = await fetch_one(conn, "SELECT mime, width, height, data, model, embedding "
                                "FROM memory_images WHERE memory_id = %s", (memory_id,))
    if row is None:
        return None
    return StoredImage(bytes(row["data"]), row["mime"], row["width"], row["height"],
                       row["model"], blob_vector(row["embedding"]))


async def vectors(conn: Conn, user_id: str, model: str, filters: SearchFilters
                  ) -> tuple[list[str], np.ndarray]:
    """The user's unarchived image memories that match ``filters``, with vectors of
    ``model``: (ids, ``[n, dimension]`` float32)."""
    where, args = filter_conditions(user_id, filters)
    rows = await fetch_all(
        conn, "SELECT m.id, i.embedding FROM memories m JOIN memory_images i "
        f"ON i.memory_id = m.id WHERE {' AND '.join(where)} AND m.modality = 'image' "
        "AND m.archived_at IS NULL AND i.model = %s ORDER BY m.id", (*args, model))
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    return [r["id"] for r in rows], np.stack([blob_vector(r["embedding"]) for r in rows])
