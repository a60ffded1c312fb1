"""The lexical (keyword) index: SQLite FTS5 ranked by BM25, scoped per user.

Why the terms are folded with the user: an FTS5 ``MATCH`` walks every posting of a term, and a
``user_id`` column (or a join) only filters afterwards, so one user's search for "coffee" would
walk the postings of every user who ever said "coffee". Each indexed term is therefore prefixed
with a keyed hash of its user (``LexicalKey``: ``k3x9q2ma…`` + ``coffe``): a user's terms are
their own, and a search reads only that user's postings, however many users the store holds.
A hash collision between two users only costs speed; the join on ``memories.user_id`` keeps
results correct.
BM25's document counts (idf, average length) are store-wide; the term counts are the user's.

The FTS table is contentless (the text lives in ``memories``); ``lexical_docs`` gives each
memory the integer row id FTS5 needs. Triggers on ``memories`` (see migration 3) keep both in
step in the same transaction as every write, whichever code path writes. They call the SQL
functions installed here, so a connection without them cannot write memories at all rather
than silently skipping the index.

A memory made from a conversation's message is indexed with its speaker's name before its
text, and carries its **context** (the neighbouring messages, see
``gateway.memory.conversation``) in a third column, ranked with a lower weight: a short reply
("Yes, last Friday!") is found by the topic its neighbours name. Migration 7
(``CONTEXT_SCHEMA``) adds that column to both indexes and rebuilds them.

Queries never reach the FTS5 parser as user text: the analyser emits only letters and digits,
and each folded term is quoted besides.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
from collections.abc import Sequence

from gateway.store.analyzer import date_terms, query_terms, terms
from gateway.store.sqlite import term_stats

USER_KEY_BYTES = 10  # 80 bits of keyed hash: 16 base32 characters before each term
LEGACY_KEY_CHARS = 8  # before migration 9: 40 bits of an unsalted hash
SECRET_BYTES = 32


class LexicalKey:
    """The per-store secret that salts the user key folded into every posting.

    An unsalted hash of a user id is the same in every store, so postings (a backup, a
    copied file) can be matched to a guessed user name offline; a keyed BLAKE2b with a secret
    made when the store is created (``store_secret``, migration 9) cannot. 80 bits also keep
    accidental collisions between users (which only cost speed) out of sight. Without a
    secret (a store not yet migrated) the legacy 40-bit key is used, so the older migrations
    keep working on the rows they wrote.
    """

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret

    def user(self, user_id: str) -> str:
        data = user_id.encode("utf-8")
        if self.secret is None:
            digest = hashlib.blake2b(data, digest_size=5).digest()
            return base64.b32encode(digest).decode("ascii").lower()[:LEGACY_KEY_CHARS]
        digest = hashlib.blake2b(data, key=self.secret, digest_size=USER_KEY_BYTES).digest()
        return base64.b32encode(digest).decode("ascii").lower()

    def load(self, conn: sqlite3.Connection) -> None:
        """Take the store's secret, where the store has one already."""
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                              "AND name = 'store_secret'").fetchone()
        if exists is not None:
            row = conn.execute("SELECT secret FROM store_secret WHERE id = 1").fetchone()
            self.secret = None if row is None else bytes(row[0])

    def fresh(self) -> bytes:
        """A new secret, used from now on (the ``lexical_new_secret`` SQL function, called
        once, by migration 9, in the transaction that stores it and re-keys every row)."""
        self.secret = secrets.token_bytes(SECRET_BYTES)
        return self.secret

    def _folded(self, user_id: str, words: Sequence[str]) -> str:
        key = self.user(user_id)
        return " ".join(key + word for word in words)

    def body_terms(self, user_id: str, text: str) -> str:
        """What the index stores for a memory's text (the ``lexical_body`` SQL function)."""
        return self._folded(user_id, terms(text))

    def when_terms(self, user_id: str, occurred_at: str) -> str:
        """What the index stores for a memory's date (the ``lexical_when`` SQL function)."""
        return self._folded(user_id, date_terms(occurred_at))


def install(conn: sqlite3.Connection, key: LexicalKey | None = None) -> LexicalKey:
    """Register the functions the lexical triggers call; needed before any memory write.
    Without ``key``, one is loaded from the database (none yet: the legacy key)."""
    if key is None:
        key = LexicalKey()
        key.load(conn)
    conn.create_function("lexical_body", 2, key.body_terms, deterministic=True)
    conn.create_function("lexical_when", 2, key.when_terms, deterministic=True)
    conn.create_function("lexical_user", 1, key.user, deterministic=True)
    conn.create_function(term_stats.FUNCTION, 4, term_stats.term_stats, deterministic=True)
    conn.create_function("lexical_new_secret", 0, key.fresh)
    return key


def match_expression(key: LexicalKey, user_id: str, query: str, *, with_dates: bool,
                     with_context: bool = True) -> str | None:
    """An FTS5 query matching any of the query's terms, or None when it has none.

    Every term is a quoted string of letters and digits, so no FTS5 syntax (AND, NEAR, ``*``,
    ``^``, column filters, quotes) can come from the user. Without dates (or context) the
    match is limited to the other columns.
    """
    words = query_terms(query)
    if not words:
        return None
    folded = key.user(user_id)
    anyof = " OR ".join(f'"{folded}{word}"' for word in words)
    if with_dates and with_context:
        return anyof
    columns = " ".join(["body", *(["occurred"] if with_dates else []),
                        *(["context"] if with_context else [])])
    return f"{{{columns}}} : ({anyof})"


def _v1_remove(fts: str, docs: str) -> str:
    """Migration 3/6 trigger SQL taking a row's two-column terms out of ``fts``."""
    return (f"    INSERT INTO {fts} ({fts}, rowid, body, occurred)\n"
            "    SELECT 'delete', doc, lexical_body(old.user_id, old.text),\n"
            "           lexical_when(old.user_id, old.occurred_at)\n"
            f"    FROM {docs} WHERE memory_id = old.id;\n")


def _v1_add(fts: str, docs: str) -> str:
    """Migration 3/6 trigger SQL giving a new row a doc in ``docs`` and its terms in ``fts``."""
    return (f"    INSERT INTO {docs} (memory_id) VALUES (new.id);\n"
            f"    INSERT INTO {fts} (rowid, body, occurred)\n"
            "    VALUES (last_insert_rowid(), lexical_body(new.user_id, new.text),\n"
            "            lexical_when(new.user_id, new.occurred_at));\n")


def _v1_tables(fts: str, docs: str) -> str:
    return f"""
CREATE VIRTUAL TABLE {fts} USING fts5 (
    body, occurred, content = '', tokenize = 'ascii'
);
CREATE TABLE {docs} (
    doc       INTEGER PRIMARY KEY,
    memory_id TEXT NOT NULL UNIQUE
);"""


def _v1_edits(name: str, fts: str, docs: str, update_head: str) -> str:
    """The delete and update triggers of one two-column index (migrations 3 and 6)."""
    return f"""
CREATE TRIGGER {name}_delete AFTER DELETE ON memories BEGIN
{_v1_remove(fts, docs)}    DELETE FROM {docs} WHERE memory_id = old.id;
END;
CREATE TRIGGER {name}_update{update_head}
{_v1_remove(fts, docs)}    INSERT INTO {fts} (rowid, body, occurred)
    SELECT doc, lexical_body(new.user_id, new.text), lexical_when(new.user_id, new.occurred_at)
    FROM {docs} WHERE memory_id = new.id;
END;"""


_LIVE = ("lexical_index", "lexical_docs")
_ARCHIVE = ("archive_lexical_index", "archive_lexical_docs")

# Migration 3's lexical part: the FTS table, the id map, the triggers and the backfill.
SCHEMA = (_v1_tables(*_LIVE) + f"""
CREATE TRIGGER memories_lexical_insert AFTER INSERT ON memories BEGIN
{_v1_add(*_LIVE)}END;"""
    + _v1_edits("memories_lexical", *_LIVE,
                " AFTER UPDATE OF user_id, text, occurred_at ON memories\nBEGIN") + """
INSERT INTO lexical_docs (memory_id) SELECT id FROM memories ORDER BY id;
INSERT INTO lexical_index (rowid, body, occurred)
SELECT d.doc, lexical_body(m.user_id, m.text), lexical_when(m.user_id, m.occurred_at)
FROM lexical_docs d JOIN memories m ON m.id = d.memory_id;
""")

# Migration 6's lexical part: archived memories (see ``gateway.jobs.compress``) move out of
# ``lexical_index`` into ``archive_lexical_index`` (same terms, same per-user folding), so a
# default search never walks their postings; ``include_archived`` searches both. A memory is
# in exactly one of the two; the first two triggers move it when ``archived_at`` is set or
# cleared, the others keep the archive index in step with edits and deletes of archived rows
# (the triggers of ``SCHEMA`` find no ``lexical_docs`` row for them, so they do nothing).
ARCHIVE_SCHEMA = (_v1_tables(*_ARCHIVE) + f"""
CREATE TRIGGER memories_lexical_archive AFTER UPDATE OF archived_at ON memories
WHEN old.archived_at IS NULL AND new.archived_at IS NOT NULL BEGIN
{_v1_remove(*_LIVE)}    DELETE FROM lexical_docs WHERE memory_id = old.id;
{_v1_add(*_ARCHIVE)}END;
CREATE TRIGGER memories_lexical_restore AFTER UPDATE OF archived_at ON memories
WHEN old.archived_at IS NOT NULL AND new.archived_at IS NULL BEGIN
{_v1_remove(*_ARCHIVE)}    DELETE FROM archive_lexical_docs WHERE memory_id = old.id;
{_v1_add(*_LIVE)}END;"""
    + _v1_edits("memories_archive_lexical", *_ARCHIVE,
                "\nAFTER UPDATE OF user_id, text, occurred_at ON memories BEGIN") + "\n")


def _context_triggers(fts: str, docs: str, archived: bool) -> str:
    """The triggers of one index (live or archive) over text, date and context.

    Same rules as ``SCHEMA`` and ``ARCHIVE_SCHEMA``: a row is in the index whose ``docs``
    table lists it; the live index's insert trigger takes every new row (none is archived at
    insert), the move triggers carry a row between the two when ``archived_at`` changes.
    """
    def values(row: str) -> str:  # the text after its speaker, as conversation.attributed
        return (f"lexical_body({row}.user_id, {said(row)}), "
                f"lexical_when({row}.user_id, {row}.occurred_at), "
                f"lexical_body({row}.user_id, coalesce({row}.context, ''))")

    prefix = "archive_" if archived else ""
    remove = (f"INSERT INTO {fts} ({fts}, rowid, body, occurred, context) "
              f"SELECT 'delete', doc, {values('old')} FROM {docs} WHERE memory_id = old.id;")
    out = f"""
CREATE TRIGGER memories_{prefix}lexical_delete AFTER DELETE ON memories BEGIN
    {remove}
    DELETE FROM {docs} WHERE memory_id = old.id;
END;
CREATE TRIGGER memories_{prefix}lexical_update
AFTER UPDATE OF user_id, text, occurred_at, context, speaker ON memories BEGIN
    {remove}
    INSERT INTO {fts} (rowid, body, occurred, context)
    SELECT doc, {values('new')} FROM {docs} WHERE memory_id = new.id;
END;
"""
    if archived:
        return out
    other_fts, other_docs = "archive_lexical_index", "archive_lexical_docs"
    other_remove = remove.replace(fts, other_fts).replace(docs, other_docs)
    head = f"""
CREATE TRIGGER memories_lexical_insert AFTER INSERT ON memories BEGIN
    INSERT INTO {docs} (memory_id) VALUES (new.id);
    INSERT INTO {fts} (rowid, body, occurred, context)
    VALUES (last_insert_rowid(), {values('new')});
END;
"""
    move = ("CREATE TRIGGER memories_lexical_{name} AFTER UPDATE OF archived_at ON memories\n"
            "WHEN old.archived_at IS {was}NULL AND new.archived_at IS {now}NULL BEGIN\n"
            "    {remove}\n"
            "    DELETE FROM {source} WHERE memory_id = old.id;\n"
            "    INSERT INTO {docs} (memory_id) VALUES (new.id);\n"
            "    INSERT INTO {fts} (rowid, body, occurred, context)\n"
            f"    VALUES (last_insert_rowid(), {values('new')});\nEND;\n")
    return (out + head
            + move.format(name="archive", was="", now="NOT ", remove=remove, source=docs,
                          docs=other_docs, fts=other_fts)
            + move.format(name="restore", was="NOT ", now="", remove=other_remove,
                          source=other_docs, docs=docs, fts=fts))


_TRIGGERS = ("memories_lexical_insert", "memories_lexical_delete", "memories_lexical_update",
                 "memories_lexical_archive", "memories_lexical_restore",
                 "memories_archive_lexical_delete", "memories_archive_lexical_update")


def said(row: str) -> str:
    """SQL for a row's text after its speaker's name (``gateway.memory.conversation``)."""
    return f"coalesce({row}.speaker || ': ', '') || {row}.text"


def _rebuilt(fts: str, docs: str) -> str:
    return f"""
DROP TABLE {fts};
CREATE VIRTUAL TABLE {fts} USING fts5 (
    body, occurred, context, content = '', tokenize = 'ascii'
);
INSERT INTO {fts} (rowid, body, occurred, context)
SELECT d.doc, lexical_body(m.user_id, {said('m')}), lexical_when(m.user_id, m.occurred_at),
       lexical_body(m.user_id, coalesce(m.context, ''))
FROM {docs} d JOIN memories m ON m.id = d.memory_id;
"""


# Migration 7's lexical part: the conversation context column (NULL on existing rows), both
# indexes rebuilt with a third column for it and the speaker's name before the text, the
# triggers recreated to fill them.
CONTEXT_SCHEMA = (
    "ALTER TABLE memories ADD COLUMN context TEXT;\n"
    + "".join(f"DROP TRIGGER {name};\n" for name in _TRIGGERS)
    + _rebuilt("lexical_index", "lexical_docs")
    + _rebuilt("archive_lexical_index", "archive_lexical_docs")
    + _context_triggers("lexical_index", "lexical_docs", archived=False)
    + _context_triggers("archive_lexical_index", "archive_lexical_docs", archived=True)
)

LIVE_TRIGGERS = _context_triggers("lexical_index", "lexical_docs", archived=False)
ARCHIVE_TRIGGERS = _context_triggers("archive_lexical_index", "archive_lexical_docs",
                                     archived=True)


def _cleared(fts: str, docs: str) -> str:
    return f"INSERT INTO {fts} ({fts}) VALUES ('delete-all');\nDELETE FROM {docs};\n"


def _refilled(fts: str, docs: str, archived: bool) -> str:
    which = "IS NOT NULL" if archived else "IS NULL"
    return f"""
INSERT INTO {docs} (memory_id) SELECT id FROM memories WHERE archived_at {which} ORDER BY id;
INSERT INTO {fts} (rowid, body, occurred, context)
SELECT d.doc, lexical_body(m.user_id, {said('m')}), lexical_when(m.user_id, m.occurred_at),
       lexical_body(m.user_id, coalesce(m.context, ''))
FROM {docs} d JOIN memories m ON m.id = d.memory_id;
"""


def is_maintained(conn: sqlite3.Connection) -> bool:
    """Whether writes keep the lexical index in step (its triggers exist)."""
    return _has_trigger(conn, _TRIGGERS[0])


def _has_trigger(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                       (name,)).fetchone()
    return row is not None


def maintain(conn: sqlite3.Connection, on: bool) -> bool:
    """Turn the lexical index on or off (``MEMORY_LEXICAL_INDEX``); True when it changed.

    Off: the triggers are dropped and both indexes (and the live index's term statistics,
    ``term_stats``) emptied, so writes skip the analysis and the FTS postings. On again: the
    triggers come back and everything is rebuilt from the memories, in one transaction (a
    store that was written meanwhile is searchable again). Run on the writer connection
    (autocommit mode) at open.
    """
    stats = _has_trigger(conn, term_stats.TRIGGERS[0])
    if is_maintained(conn) == on and stats == on:
        return False
    script = "".join(f"DROP TRIGGER IF EXISTS {name};\n"
                     for name in (*_TRIGGERS, *term_stats.TRIGGERS))
    script += _cleared("lexical_index", "lexical_docs")
    script += _cleared("archive_lexical_index", "archive_lexical_docs")
    script += term_stats.CLEARED
    if on:
        script += _refilled("lexical_index", "lexical_docs", archived=False)
        script += _refilled("archive_lexical_index", "archive_lexical_docs", archived=True)
        script += term_stats.REFILLED
        script += LIVE_TRIGGERS + ARCHIVE_TRIGGERS + term_stats.TRIGGER_SQL
    conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nCOMMIT;")
    return True


# Analysis changed (``analyzer.ANALYZER_VERSION``): both indexes emptied and filled again with
# the new terms, before any write (a contentless FTS5 row can only be deleted with the terms it
# was written with).
REBUILD_SCHEMA = (
    _cleared("lexical_index", "lexical_docs")
    + _cleared("archive_lexical_index", "archive_lexical_docs")
    + _refilled("lexical_index", "lexical_docs", archived=False)
    + _refilled("archive_lexical_index", "archive_lexical_docs", archived=True)
)


# An analyser change from migration 12 on (``analyzer.ANALYZER_VERSION``): both indexes and the
# live index's term statistics rebuilt with the new terms.
REBUILD_WITH_STATS = REBUILD_SCHEMA + term_stats.CLEARED + term_stats.REFILLED


# Migration 9: a secret per store salts the user key (``LexicalKey``); both indexes are
# emptied and filled again with the salted terms in the same transaction (the new secret is
# in use from the statement that stores it).
SECRET_SCHEMA = """
CREATE TABLE store_secret (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    secret BLOB NOT NULL
);
INSERT INTO store_secret (id, secret) VALUES (1, lexical_new_secret());
""" + REBUILD_SCHEMA
