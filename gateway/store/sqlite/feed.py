"""The change feed in SQLite: a ``change_log`` table filled by triggers (migration 11).

Triggers on ``memories``, ``shadow_vectors`` and ``model_state`` append a row in the writing
transaction itself, so every code path that changes what an index holds is covered, and a
rolled-back write leaves no change behind. ``AUTOINCREMENT`` makes ``seq`` increase in commit
order (SQLite has one writer at a time) without gaps. The writing connection names itself
through the SQL function ``memory_change_origin`` (registered by ``functions.install``), so a
follower can skip its own changes. A whole user's deletion adds a ``user`` row beside its
per-memory ``delete`` rows (``note_user``), so a follower drops the partition in one step.

An update counts when its vector, text, user, agent, run or archive state changed (metadata
and priority are the store's business alone). An embedder switch rewrites every vector in one
statement; the update trigger leaves those rows out (their model label changes) and the
``version`` row stands for them all.
"""

from __future__ import annotations

import sqlite3

from gateway.store.sqlite.rows import blob_vector, in_chunks
from gateway.store.types import FeedChange, FeedPage, FeedRow

ORIGIN_FUNCTION = "memory_change_origin"
_NOW = "((julianday('now') - 2440587.5) * 86400.0)"  # Unix seconds, millisecond precision
_ORIGIN = f"{ORIGIN_FUNCTION}()"

SCHEMA = f"""
CREATE TABLE change_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    kind      TEXT NOT NULL CHECK (kind IN ('add', 'update', 'delete', 'archive', 'restore',
                                            'shadow', 'user', 'version')),
    memory_id TEXT,
    user_id   TEXT,
    origin    TEXT NOT NULL,
    at        REAL NOT NULL
);
CREATE INDEX change_log_by_time ON change_log (at);
CREATE TRIGGER change_on_insert AFTER INSERT ON memories
BEGIN
    INSERT INTO change_log (kind, memory_id, user_id, origin, at)
    VALUES (CASE WHEN NEW.archived_at IS NULL THEN 'add' ELSE 'archive' END,
            NEW.id, NEW.user_id, {_ORIGIN}, {_NOW});
END;
CREATE TRIGGER change_on_update
AFTER UPDATE OF text, embedding, embedding_model, user_id, agent_id, run_id, archived_at
ON memories
WHEN (NEW.embedding_model IS OLD.embedding_model
       AND (NEW.embedding IS NOT OLD.embedding OR NEW.text IS NOT OLD.text
            OR NEW.user_id IS NOT OLD.user_id OR NEW.agent_id IS NOT OLD.agent_id
            OR NEW.run_id IS NOT OLD.run_id))
  OR (NEW.archived_at IS NULL) <> (OLD.archived_at IS NULL)
BEGIN
    INSERT INTO change_log (kind, memory_id, user_id, origin, at)
    VALUES (CASE WHEN OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL THEN 'archive'
                 WHEN OLD.archived_at IS NOT NULL AND NEW.archived_at IS NULL THEN 'restore'
                 ELSE 'update' END,
            NEW.id, NEW.user_id, {_ORIGIN}, {_NOW});
END;
CREATE TRIGGER change_on_delete AFTER DELETE ON memories
BEGIN
    INSERT INTO change_log (kind, memory_id, user_id, origin, at)
    VALUES ('delete', OLD.id, OLD.user_id, {_ORIGIN}, {_NOW});
END;
CREATE TRIGGER change_on_shadow AFTER INSERT ON shadow_vectors
BEGIN
    INSERT INTO change_log (kind, memory_id, user_id, origin, at)
    VALUES ('shadow', NEW.memory_id,
            (SELECT user_id FROM memories WHERE id = NEW.memory_id), {_ORIGIN}, {_NOW});
END;
CREATE TRIGGER change_on_shadow_update AFTER UPDATE ON shadow_vectors
BEGIN
    INSERT INTO change_log (kind, memory_id, user_id, origin, at)
    VALUES ('shadow', NEW.memory_id,
            (SELECT user_id FROM memories WHERE id = NEW.memory_id), {_ORIGIN}, {_NOW});
END;
CREATE TRIGGER change_on_version_insert AFTER INSERT ON model_state
BEGIN
    INSERT INTO change_log (kind, origin, at) VALUES ('version', {_ORIGIN}, {_NOW});
END;
CREATE TRIGGER change_on_version AFTER UPDATE OF active, target ON model_state
BEGIN
    INSERT INTO change_log (kind, origin, at) VALUES ('version', {_ORIGIN}, {_NOW});
END;
"""


def install(conn: sqlite3.Connection, origin: str) -> None:
    """Name the connection's writes in the log (every connection that writes needs it)."""
    conn.create_function(ORIGIN_FUNCTION, 0, lambda: origin)


def note_user(conn: sqlite3.Connection, user_id: str) -> None:
    """A whole user went (deleted or erased), inside the caller's transaction."""
    conn.execute(f"INSERT INTO change_log (kind, user_id, origin, at) "
                 f"VALUES ('user', ?, {_ORIGIN}, {_NOW})", (user_id,))


def last_change(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(seq) FROM change_log").fetchone()
    return int(row[0] or 0)


# The log's changes of one user, newest first: a cached copy of that user's data checks it.
BY_USER_SCHEMA = "CREATE INDEX change_log_by_user ON change_log (user_id, seq);"


def user_change_stamp(conn: sqlite3.Connection, user_id: str) -> int:
    """The user's newest seq in the log, or the trimmed watermark (the oldest kept seq less
    one) when that is higher: moves on every change of the user and never goes back, even
    when trimming drops the user's rows (``gateway.memory.image_cache``)."""
    row = conn.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM change_log WHERE user_id = ?), 0), "
        "coalesce((SELECT min(seq) FROM change_log), 1) - 1)", (user_id,)).fetchone()
    return int(row[0])


def changes_since(conn: sqlite3.Connection, after: int, limit: int) -> FeedPage:
    rows = conn.execute(
        "SELECT seq, kind, memory_id, user_id, origin, at FROM change_log WHERE seq > ? "
        "ORDER BY seq LIMIT ?", (after, limit)).fetchall()
    oldest = conn.execute("SELECT min(seq) FROM change_log").fetchone()[0]
    missed = oldest is not None and after < oldest - 1
    return FeedPage([FeedChange(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows], missed)


def feed_rows(conn: sqlite3.Connection, ids: list[str]) -> dict[str, FeedRow]:
    found: dict[str, FeedRow] = {}
    for marks, chunk in in_chunks(ids):
        for row in conn.execute(
            "SELECT m.id, m.user_id, m.archived_at IS NOT NULL, m.embedding_model, m.embedding, "
            "s.model, s.embedding FROM memories m "
            f"LEFT JOIN shadow_vectors s ON s.memory_id = m.id WHERE m.id IN ({marks})", chunk
        ):
            shadow = None if row[5] is None else (row[5], blob_vector(row[6]))
            found[row[0]] = FeedRow(row[1], bool(row[2]), row[3], blob_vector(row[4]), shadow)
    return found


def trim(conn: sqlite3.Connection, before: float) -> int:
    """Drop changes older than ``before``, keeping the newest (``last_change`` stays)."""
    cursor = conn.execute(
        "DELETE FROM change_log WHERE at < ? AND seq < (SELECT max(seq) FROM change_log)",
        (before,))
    return cursor.rowcount
