"""The change feed in PostgreSQL: ``change_log`` filled by triggers, ``NOTIFY`` carrying the seq.

As in SQLite (``gateway.store.sqlite.feed``), row triggers on ``memories``, ``shadow_vectors``
and ``model_state`` append each change in the writing transaction. Two things differ:

- **Commit order.** PostgreSQL commits concurrent transactions in any order, so a seq taken
  from a sequence could become visible after a higher one, and a follower that moved past the
  higher one would never see it. ``memory_change`` takes a transaction-level advisory lock
  before it takes a seq, so transactions that change what an index holds commit one after
  the other from their first change on, and seq order is commit order. The store's writes
  that may change memories take it first thing (``locked``), so row locks always come after
  it; writes that touch no memory (jobs, ingest events) never take it. A rolled-back transaction
  leaves a gap in the seqs, which is harmless: a follower asks for everything after a seq.
- **Notifications.** Each change also sends ``NOTIFY memory_changes, '<seq>'``, delivered at
  commit; a follower ``LISTEN``s on a connection of its own and wakes at once. The table
  stays the truth: a notification missed (the listener reconnected, the follower restarted)
  costs at most the follower's wait bound, after which it reads the table anyway.

The writing connection names itself with the ``memory.origin`` setting (given at connect
time by the store), so a follower can skip its own changes. Trimming records the highest seq
it dropped (``change_log_trimmed``), so a follower behind it knows it must reload.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from psycopg import AsyncConnection

from gateway.store.postgres.rows import Conn, blob_vector, fetch_all, fetch_one, rowcount
from gateway.store.types import FeedChange, FeedPage, FeedRow

T = TypeVar("T")
CHANNEL = "memory_changes"
FEED_LOCK = 0x6D656D32  # pg_advisory_xact_lock key: one change-writing transaction at a time
ORIGIN_SETTING = "memory.origin"

SCHEMA = f"""
CREATE SEQUENCE change_seq;
CREATE TABLE change_log (
    seq       BIGINT PRIMARY KEY,
    kind      TEXT NOT NULL CHECK (kind IN ('add', 'update', 'delete', 'archive', 'restore',
                                            'shadow', 'user', 'version')),
    memory_id TEXT COLLATE "C",
    user_id   TEXT COLLATE "C",
    origin    TEXT NOT NULL,
    at        DOUBLE PRECISION NOT NULL
);
CREATE INDEX change_log_by_time ON change_log (at);
CREATE TABLE change_log_trimmed (upto BIGINT NOT NULL);
INSERT INTO change_log_trimmed VALUES (0);

CREATE FUNCTION memory_change(change_kind TEXT, change_memory TEXT, change_user TEXT)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    next_seq BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock({FEED_LOCK});
    next_seq := nextval('change_seq');
    INSERT INTO change_log (seq, kind, memory_id, user_id, origin, at)
    VALUES (next_seq, change_kind, change_memory, change_user,
            coalesce(current_setting('{ORIGIN_SETTING}', true), ''),
            extract(epoch FROM clock_timestamp()));
    PERFORM pg_notify('{CHANNEL}', next_seq::text);
END $$;

CREATE FUNCTION memory_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM memory_change(CASE WHEN NEW.archived_at IS NULL THEN 'add' ELSE 'archive' END,
                              NEW.id, NEW.user_id);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM memory_change('delete', OLD.id, OLD.user_id);
    ELSE
        PERFORM memory_change(
            CASE WHEN OLD.archived_at IS NULL AND NEW.archived_at IS NOT NULL THEN 'archive'
                 WHEN OLD.archived_at IS NOT NULL AND NEW.archived_at IS NULL THEN 'restore'
                 ELSE 'update' END, NEW.id, NEW.user_id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER change_on_insert AFTER INSERT ON memories
    FOR EACH ROW EXECUTE FUNCTION memory_row_changed();
CREATE TRIGGER change_on_delete AFTER DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION memory_row_changed();
-- an embedder switch rewrites every vector with a new label: the 'version' row stands for them
CREATE TRIGGER change_on_update AFTER UPDATE ON memories FOR EACH ROW
    WHEN ((NEW.embedding_model IS NOT DISTINCT FROM OLD.embedding_model
           AND (NEW.embedding IS DISTINCT FROM OLD.embedding
                OR NEW.text IS DISTINCT FROM OLD.text
                OR NEW.user_id IS DISTINCT FROM OLD.user_id
                OR NEW.agent_id IS DISTINCT FROM OLD.agent_id
                OR NEW.run_id IS DISTINCT FROM OLD.run_id))
          OR (NEW.archived_at IS NULL) <> (OLD.archived_at IS NULL))
    EXECUTE FUNCTION memory_row_changed();

CREATE FUNCTION memory_shadow_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_change('shadow', NEW.memory_id,
                          (SELECT user_id FROM memories WHERE id = NEW.memory_id));
    RETURN NULL;
END $$;
CREATE TRIGGER change_on_shadow AFTER INSERT OR UPDATE ON shadow_vectors
    FOR EACH ROW EXECUTE FUNCTION memory_shadow_changed();

CREATE FUNCTION memory_version_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM memory_change('version', NULL, NULL);
    RETURN NULL;
END $$;
CREATE TRIGGER change_on_version_insert AFTER INSERT ON model_state
    FOR EACH ROW EXECUTE FUNCTION memory_version_changed();
CREATE TRIGGER change_on_version AFTER UPDATE ON model_state FOR EACH ROW
    WHEN (NEW.active IS DISTINCT FROM OLD.active OR NEW.target IS DISTINCT FROM OLD.target)
    EXECUTE FUNCTION memory_version_changed();
"""


def locked(func: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """``func(conn, ...)`` after taking the feed lock, first thing in its transaction.

    The triggers take it anyway; taking it before any row lock keeps one order of locks for
    every writer, so a writer holding a row lock never waits for the feed lock while the feed
    lock's holder waits for that row (a deadlock PostgreSQL would break by failing one).
    """

    async def run(conn: Conn, *args: Any) -> T:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (FEED_LOCK,))
        return await func(conn, *args)

    return run


def connect_options(origin: str) -> str:
    """libpq ``options`` that name a pooled connection's writes in the log."""
    return f"-c {ORIGIN_SETTING}={origin}"


async def note_user(conn: Conn, user_id: str) -> None:
    """A whole user went (deleted or erased), inside the caller's transaction."""
    await conn.execute("SELECT memory_change('user', NULL, %s)", (user_id,))


async def last_change(conn: Conn) -> int:
    row = await fetch_one(conn, "SELECT coalesce(max(seq), 0) AS last FROM change_log")
    return int(row["last"]) if row else 0


# The log's changes of one user, newest first: a cached copy of that user's data checks it.
BY_USER_SCHEMA = 'CREATE INDEX change_log_by_user ON change_log (user_id, seq);'


async def user_change_stamp(conn: Conn, user_id: str) -> int:
    """As SQLite's (``gateway.store.sqlite.feed.user_change_stamp``): the user's newest seq,
    or the trimmed watermark when higher; it never goes back."""
    row = await fetch_one(
        conn, "SELECT greatest(coalesce((SELECT max(seq) FROM change_log WHERE user_id = %s), "
        "0), coalesce((SELECT min(seq) FROM change_log), 1) - 1) AS stamp", (user_id,))
    return int(row["stamp"]) if row else 0


async def changes_since(conn: Conn, after: int, limit: int) -> FeedPage:
    rows = await fetch_all(
        conn, "SELECT seq, kind, memory_id, user_id, origin, at FROM change_log "
        "WHERE seq > %s ORDER BY seq LIMIT %s", (after, limit))
    trimmed = await fetch_one(conn, "SELECT upto FROM change_log_trimmed")
    missed = trimmed is not None and after < int(trimmed["upto"])
    return FeedPage([FeedChange(r["seq"], r["kind"], r["memory_id"], r["user_id"], r["origin"],
                                r["at"]) for r in rows], missed)


async def feed_rows(conn: Conn, ids: list[str]) -> dict[str, FeedRow]:
    rows = await fetch_all(
        conn, "SELECT m.id, m.user_id, m.archived_at IS NOT NULL AS archived, "
        "m.embedding_model, m.embedding, s.model AS shadow_model, s.embedding AS shadow "
        "FROM memories m LEFT JOIN shadow_vectors s ON s.memory_id = m.id "
        "WHERE m.id = ANY(%s)", (ids,))
    return {r["id"]: FeedRow(
        r["user_id"], r["archived"], r["embedding_model"], blob_vector(r["embedding"]),
        None if r["shadow_model"] is None else (r["shadow_model"], blob_vector(r["shadow"])))
        for r in rows}


async def trim(conn: Conn, before: float) -> int:
    """Drop changes older than ``before``, keeping the newest; remember the highest dropped."""
    rows = await fetch_all(
        conn, "DELETE FROM change_log WHERE at < %s AND seq < "
        "(SELECT max(seq) FROM change_log) RETURNING seq", (before,))
    if rows:
        await rowcount(conn, "UPDATE change_log_trimmed SET upto = greatest(upto, %s)",
                       (max(int(r["seq"]) for r in rows),))
    return len(rows)


class Listener:
    """A ``LISTEN`` connection of its own (autocommit; the pool's are transactional)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: AsyncConnection[tuple[object, ...]] | None = None

    async def ensure(self) -> None:
        """Listen from now on (notifications queue on the connection between waits)."""
        if self._conn is None or self._conn.closed:
            self._conn = await AsyncConnection.connect(self.url, autocommit=True,
                                                       connect_timeout=10)
            await self._conn.execute(f"LISTEN {CHANNEL}")

    async def wait(self, after: int, timeout_s: float) -> int:
        """The highest seq notified past ``after`` within ``timeout_s`` (``after``: none)."""
        assert self._conn is not None
        newest = after
        deadline = time.monotonic() + timeout_s
        try:
            while newest <= after and (left := deadline - time.monotonic()) > 0:
                async for note in self._conn.notifies(timeout=left, stop_after=1):
                    newest = max(newest, int(note.payload))
        except BaseException:
            await self.close()  # a broken connection: the next wait connects afresh
            raise
        return newest

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()
