"""Schema migrations, versioned by ``PRAGMA user_version`` from day one.

Append a new script to ``MIGRATIONS`` to change the schema; never edit a released one.
"""

from __future__ import annotations

import sqlite3

from gateway.store.sqlite import feed, lexical, space_guard, term_stats

MIGRATIONS: list[str] = [
    # 1: memories with their vectors, and an append-only history of events.
    """
    CREATE TABLE memories (
        id              TEXT PRIMARY KEY,
        user_id         TEXT NOT NULL,
        agent_id        TEXT,
        run_id          TEXT,
        text            TEXT NOT NULL,
        metadata        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
        priority        INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 10),
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        embedding       BLOB NOT NULL,
        embedding_model TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX memories_by_user ON memories (user_id, id);
    CREATE TABLE history (
        seq       INTEGER PRIMARY KEY AUTOINCREMENT,
        memory_id TEXT NOT NULL,
        user_id   TEXT NOT NULL,
        event     TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
        old_text  TEXT,
        new_text  TEXT,
        payload   TEXT NOT NULL DEFAULT '{}',
        at        TEXT NOT NULL
    );
    CREATE INDEX history_by_memory ON history (memory_id, seq);
    CREATE TRIGGER history_is_append_only BEFORE UPDATE ON history
    BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
    """,
    # 2: model versions. The active version per model, an embedder migration in progress
    # (target + resume cursor), and the target's vectors until the switch.
    """
    CREATE TABLE model_state (
        model      TEXT PRIMARY KEY,
        active     TEXT NOT NULL,
        target     TEXT,
        cursor     TEXT NOT NULL DEFAULT '',
        started_at TEXT
    );
    CREATE TABLE shadow_vectors (
        memory_id TEXT PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
        model     TEXT NOT NULL,
        embedding BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
    # 3: time and keywords. When a memory's event happened (defaults to when it was stored)
    # and when it expires; the per-user lexical index over text and date, kept in step by
    # triggers (needs ``lexical.install`` on the connection), backfilled from existing rows.
    """
    ALTER TABLE memories ADD COLUMN occurred_at TEXT NOT NULL DEFAULT '';
    ALTER TABLE memories ADD COLUMN expires_at TEXT;
    UPDATE memories SET occurred_at = created_at;
    CREATE INDEX memories_by_occurrence ON memories (user_id, occurred_at, id);
    CREATE INDEX memories_expiring ON memories (user_id, expires_at)
        WHERE expires_at IS NOT NULL;
    """
    + lexical.SCHEMA,
    # 4: conversation ingest. Who said a memory (the message's role and speaker name); an
    # expression index on the duplicate key of the text (``memory_text_key``, installed by
    # ``gateway.domain.normalise``) so an add finds an exact duplicate in its scope at once;
    # and ingest events: asynchronous and LLM-extraction requests with their raw input, kept
    # until they are done, so a crash or a failing LLM loses nothing (the retry queue).
    """
    ALTER TABLE memories ADD COLUMN role TEXT;
    ALTER TABLE memories ADD COLUMN speaker TEXT;
    CREATE INDEX memories_by_text_key ON memories (user_id, memory_text_key(text));
    CREATE TABLE ingest_events (
        id           TEXT PRIMARY KEY,
        user_id      TEXT NOT NULL,
        status       TEXT NOT NULL
                     CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
        request      TEXT NOT NULL CHECK (json_valid(request)),
        result       TEXT CHECK (result IS NULL OR json_valid(result)),
        error        TEXT,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX ingest_events_due ON ingest_events (status, next_attempt);
    """,
    # 5: consolidation jobs. A durable state machine (queued -> running -> done | failed); a
    # running job holds a lease, so a job whose process died is claimed again when it expires;
    # the cursor (last user finished) lets it resume where it was.
    """
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        user_id     TEXT,
        status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        lease_until TEXT,
        cursor      TEXT NOT NULL DEFAULT '',
        progress    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(progress)),
        error       TEXT,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        finished_at TEXT
    ) WITHOUT ROWID;
    CREATE INDEX jobs_by_status ON jobs (status, created_at);
    """,
    # 6: archive. A memory folded into a summary by the ``compress`` job keeps its row, with
    # when it was archived and the summary that holds it; a summary lists its sources. New
    # columns are NULL on existing rows (nothing is archived), so no backfill is needed.
    # Archived rows leave the lexical index for an archive index of their own (the triggers
    # below move them both ways), so default keyword search never reads them.
    """
    ALTER TABLE memories ADD COLUMN archived_at TEXT;
    ALTER TABLE memories ADD COLUMN summary_id TEXT;
    ALTER TABLE memories ADD COLUMN sources TEXT
        CHECK (sources IS NULL OR json_valid(sources));
    CREATE INDEX memories_archived ON memories (user_id, id) WHERE archived_at IS NOT NULL;
    CREATE INDEX memories_by_summary ON memories (summary_id) WHERE summary_id IS NOT NULL;
    """
    + lexical.ARCHIVE_SCHEMA,
    # 7: conversation context. A memory made from a message keeps its neighbouring messages
    # (``gateway.memory.conversation``) for keyword search: a third column in both lexical
    # indexes, weighted lower than the text; existing rows have none.
    lexical.CONTEXT_SCHEMA,
    # 8: analyzer version 2 (more function words dropped): the lexical indexes rebuilt.
    lexical.REBUILD_SCHEMA,
    # 9: a secret per store (``store_secret``) salts the user key of the lexical postings
    # (80-bit keyed BLAKE2b instead of a 40-bit unsalted hash); both indexes re-keyed.
    lexical.SECRET_SCHEMA,
    # 10: bounded queues. A job records the tenant whose users it works on (NULL: every
    # tenant's), filled in for jobs of one user from the user id's tenant prefix (the
    # ``\x1f`` separator of ``gateway.auth.scope``; no prefix: the default tenant), so a
    # tenant's pending jobs are counted and its jobs listed by one index; the retention prune
    # finds deleted memories' history by the time of their delete.
    """
    ALTER TABLE jobs ADD COLUMN tenant TEXT;
    UPDATE jobs SET tenant = CASE WHEN instr(user_id, char(31)) > 0
        THEN substr(user_id, 1, instr(user_id, char(31)) - 1) ELSE 'default' END
        WHERE user_id IS NOT NULL;
    CREATE INDEX jobs_by_tenant ON jobs (tenant, status, created_at);
    CREATE INDEX history_deletes ON history (at) WHERE event = 'DELETE';
    """,
    # 11: the change feed. Triggers append every change a replica's vector index must follow
    # to ``change_log`` in the writing transaction (``gateway.store.sqlite.feed``); nothing to
    # backfill: a follower loads its index from the store and follows from the newest seq.
    feed.SCHEMA,
    # 12: image memories. A memory's modality ('text' or 'image'); an image memory's picture
    # (re-encoded, metadata stripped) and its vector in the CLIP space ``model`` beside it,
    # removed with the memory (delete, erase) by the foreign key.
    """
    ALTER TABLE memories ADD COLUMN modality TEXT NOT NULL DEFAULT 'text'
        CHECK (modality IN ('text', 'image'));
    CREATE TABLE memory_images (
        memory_id TEXT PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
        mime      TEXT NOT NULL,
        width     INTEGER NOT NULL,
        height    INTEGER NOT NULL,
        data      BLOB NOT NULL,
        model     TEXT NOT NULL,
        embedding BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX memories_images ON memories (user_id, id) WHERE modality = 'image';
    """,
    # 13: per-term statistics of the live lexical index (``term_stats``: document counts and
    # per-memory hit bounds), filled from the live memories and kept in step by triggers, so
    # keyword search can prune (``pruned``) instead of ranking every posting.
    term_stats.SCHEMA,
    # 14: a vector is stored only in a live space: a memory's label is its model's active
    # version, a shadow vector's the migration target (``space_guard``), so a replica that
    # has not yet followed a switch cannot write into the old space.
    space_guard.SCHEMA,
    # 15: CLIP versions. A CLIP migration's target vectors for every picture, beside the
    # active ones in ``memory_images`` until the switch (``image_versions``); the CLIP
    # active version and target sit in ``model_state`` (model ``clip``).
    """
    CREATE TABLE image_shadow_vectors (
        memory_id TEXT PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
        model     TEXT NOT NULL,
        embedding BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
    # 16: the change log by user, for ``user_change_stamp`` (``feed``).
    feed.BY_USER_SCHEMA,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the resulting version."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {current} is newer than this gateway knows "
            f"({len(MIGRATIONS)}): refusing to open it"
        )
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                conn.rollback()
            raise
    return len(MIGRATIONS)
