"""Image memories' pictures and CLIP vectors (``memory_images``), on a given connection.

A row is written in the same transaction as its memory (``memories.insert_rows``) and leaves
with it (foreign key, ``ON DELETE CASCADE``), so delete, erase and a user's erasure need nothing
here. Searches read a user's image vectors straight from this table.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from gateway.domain.model import SearchFilters, StoredImage
from gateway.store.sqlite.rows import blob_vector, filter_conditions, vector_blob


def insert(conn: sqlite3.Connection, memory_id: str, image: StoredImage) -> None:
    conn.execute(
        "INSERT INTO memory_images (memory_id, mime, width, height, data, model, embedding) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (memory_id, image.mime, image.width, image.height, image.data, image.model,
         vector_blob(image.vector)))


def get(conn: sqlite3.Connection, memory_id: str) -> StoredImage | None:
    row = conn.execute("SELECT mime, width, height, data, model, embedding FROM memory_images "
                       "WHERE memory_id = ?", (memory_id,)).fetchone()
    if row is None:
        return None
    return StoredImage(bytes(row["data"]), row["mime"], row["width"], row["height"],
                       row["model"], blob_vector(row["embedding"]))


def vectors(conn: sqlite3.Connection, user_id: str, model: str, filters: SearchFilters
            ) -> tuple[list[str], np.ndarray]:
    """The user's unarchived image memories that match ``filters``, with vectors of
    ``model``: (ids, ``[n, dimension]`` float32)."""
    where, args = filter_conditions(user_id, filters)
    rows = conn.execute(
        "SELECT m.id, i.embedding FROM memories m JOIN memory_images i ON i.memory_id = m.id "
        f"WHERE {' AND '.join(where)} AND m.modality = 'image' AND m.archived_at IS NULL "
        "AND i.model = ? ORDER BY m.id", (*args, model)).fetchall()
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    return [r["id"] for r in rows], np.stack([blob_vector(r["embedding"]) for r in rows])
