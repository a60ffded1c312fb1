"""Right to erasure in SQLite: a memory's or a user's rows, history and ingest events removed
in one transaction, then the WAL checkpointed and truncated.

A plain delete keeps the text (the DELETE event's ``old_text``, the ingest event's raw
request). Erasure deletes those rows instead. The writer connection runs with
``PRAGMA secure_delete = ON`` (see ``SQLiteStore._open``), so SQLite overwrites the deleted
cells and freed pages with zeros instead of leaving them in free space; the checkpoint then
copies the zeroed pages into the database file and truncates the WAL, whose older frames still
held the text. The keyword index (contentless FTS5) never held the text, only its terms
prefixed with the salted user key; FTS5 drops deleted terms when it merges its segments. Its
term statistics (``term_stats``) delete a term's row, zeroed, with the last memory holding it.
"""

from __future__ import annotations

import json
import sqlite3

from gateway.store.sqlite import feed, memories
from gateway.store.types import Erased


def _events_naming(conn: sqlite3.Connection, needle: str) -> int:
    """Delete the ingest events whose raw request or result contains ``needle``."""
    return conn.execute(
        "DELETE FROM ingest_events WHERE instr(request, ?) > 0 "
        "OR instr(coalesce(result, ''), ?) > 0", (needle, needle)).rowcount


def erase_one(conn: sqlite3.Connection, memory_id: str, at: str) -> Erased | None:
    """See ``Store.erase``; runs inside the caller's transaction."""
    memory = memories.get(conn, memory_id)
    if memory is not None:
        owner = memory.user_id
        restored = memories.delete_rows(conn, [memory], at, {})
    else:
        row = conn.execute("SELECT user_id FROM history WHERE memory_id = ? LIMIT 1",
                           (memory_id,)).fetchone()
        if row is None:
            return None
        owner, restored = row[0], []
    history = conn.execute("DELETE FROM history WHERE memory_id = ?", (memory_id,)).rowcount
    if memory is not None:
        history -= 1  # the DELETE event delete_rows just wrote was never kept
    # memory ids are UUIDs: an event that names this one produced, matched or changed it
    ingest = _events_naming(conn, memory_id)
    return Erased(owner, memory, restored, history, ingest)


def erase_user(conn: sqlite3.Connection, user_id: str) -> list[str]:
    """See ``Store.erase_user``; runs inside the caller's transaction."""
    ids = [row[0] for row in conn.execute("SELECT id FROM memories WHERE user_id = ?",
                                          (user_id,))]
    conn.execute("DELETE FROM memories WHERE user_id = ?", (user_id,))
    feed.note_user(conn, user_id)
    conn.execute("DELETE FROM history WHERE user_id = ?", (user_id,))
    conn.execute("DELETE FROM ingest_events WHERE user_id = ?", (user_id,))
    # a batch's event is filed under its first item's user: find the user in the request too
    _events_naming(conn, json.dumps(user_id))
    return ids


def scrub(conn: sqlite3.Connection) -> None:
    """After an erasure commits: copy the zeroed pages into the database file and truncate
    the WAL (best effort: a reader mid-transaction leaves the rest to the next checkpoint)."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
