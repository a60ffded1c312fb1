"""Schema migrations in PostgreSQL dialect, versioned in a ``schema_version`` table.

Version 1 is the whole schema the SQLite backend reaches after its ten migrations: a new
PostgreSQL store starts there, so SQLite's history is not replayed (there is nothing to carry
over: a SQLite store moves by export and import). Append a new script to ``MIGRATIONS`` to
change the schema; never edit a released one. Migrating holds an advisory lock, so replicas
opening one database together apply each script once.

Text that is ordered or compared as a key uses the "C" collation: byte order, as SQLite
compares, whatever the database's default collation is.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from gateway.store.postgres import feed, postings, space_guard

MIGRATION_LOCK = 0x6D656D31  # pg_advisory_xact_lock key held while migrating

_KEY = 'TEXT COLLATE "C"'

MIGRATIONS: list[str] = [
    # 1: memories (vector as float32 little-endian bytea, the exact-duplicate text key kept
    # as a column so the dedup lookup is an index probe), append-only history, model
    # versions and shadow vectors, the lexical documents (tsvector of user-keyed terms, see
    # ``lexical``) with their sharded totals, ingest events, jobs, the store's secret.
    f"""
    CREATE TABLE memories (
        id              {_KEY} PRIMARY KEY,
        user_id         {_KEY} NOT NULL,
        agent_id        {_KEY},
        run_id          {_KEY},
        text            TEXT NOT NULL,
        text_key        TEXT NOT NULL,
        metadata        JSONB NOT NULL DEFAULT '{{}}',
        priority        INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 10),
        created_at      {_KEY} NOT NULL,
        updated_at      {_KEY} NOT NULL,
        embedding       BYTEA NOT NULL,
        embedding_model TEXT NOT NULL,
        occurred_at     {_KEY} NOT NULL,
        expires_at      {_KEY},
        role            TEXT,
        speaker         TEXT,
        archived_at     {_KEY},
        summary_id      {_KEY},
        sources         JSONB,
        context         TEXT
    );
    CREATE INDEX memories_by_user ON memories (user_id, id);
    CREATE INDEX memories_by_occurrence ON memories (user_id, occurred_at, id);
    CREATE INDEX memories_expiring ON memories (user_id, expires_at)
        WHERE expires_at IS NOT NULL;
    CREATE INDEX memories_by_text_key ON memories (user_id, text_key);
    CREATE INDEX memories_archived ON memories (user_id, id) WHERE archived_at IS NOT NULL;
    CREATE INDEX memories_by_summary ON memories (summary_id) WHERE summary_id IS NOT NULL;

    CREATE TABLE history (
        seq       BIGSERIAL PRIMARY KEY,
        memory_id {_KEY} NOT NULL,
        user_id   {_KEY} NOT NULL,
        event     TEXT NOT NULL CHECK (event IN ('ADD', 'UPDATE', 'DELETE')),
        old_text  TEXT,
        new_text  TEXT,
        payload   TEXT NOT NULL DEFAULT '{{}}',
        at        {_KEY} NOT NULL
    );
    CREATE INDEX history_by_memory ON history (memory_id, seq);
    CREATE INDEX history_by_user ON history (user_id);
    CREATE INDEX history_deletes ON history (at) WHERE event = 'DELETE';
    CREATE FUNCTION history_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'history is append-only'; END $$;
    CREATE TRIGGER history_is_append_only BEFORE UPDATE ON history
        FOR EACH ROW EXECUTE FUNCTION history_refuse_update();

    CREATE TABLE model_state (
        model      TEXT PRIMARY KEY,
        active     TEXT NOT NULL,
        target     TEXT,
        cursor     {_KEY} NOT NULL DEFAULT '',
        started_at TEXT
    );
    CREATE TABLE shadow_vectors (
        memory_id {_KEY} PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
        model     TEXT NOT NULL,
        embedding BYTEA NOT NULL
    );

    CREATE TABLE store_secret (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        secret BYTEA NOT NULL
    );
    CREATE TABLE store_settings (
        id                 INTEGER PRIMARY KEY CHECK (id = 1),
        lexical_maintained BOOLEAN NOT NULL
    );
    INSERT INTO store_settings (id, lexical_maintained) VALUES (1, TRUE);

    CREATE TABLE lexical_docs (
        memory_id {_KEY} PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
        archived  BOOLEAN NOT NULL,
        terms     TSVECTOR NOT NULL,
        length    INTEGER NOT NULL
    );
    CREATE INDEX lexical_docs_terms ON lexical_docs USING GIN (terms);
    CREATE TABLE lexical_totals (
        archived BOOLEAN NOT NULL,
        slot     INTEGER NOT NULL,
        docs     BIGINT NOT NULL DEFAULT 0,
        tokens   BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (archived, slot)
    );
    INSERT INTO lexical_totals (archived, slot)
        SELECT a, s FROM (VALUES (FALSE), (TRUE)) AS v(a), generate_series(0, 15) AS s;
    CREATE FUNCTION lexical_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('DELETE', 'UPDATE') THEN
            UPDATE lexical_totals SET docs = docs - 1, tokens = tokens - OLD.length
            WHERE archived = OLD.archived AND slot = abs(hashtext(OLD.memory_id)) % 16;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            UPDATE lexical_totals SET docs = docs + 1, tokens = tokens + NEW.length
            WHERE archived = NEW.archived AND slot = abs(hashtext(NEW.memory_id)) % 16;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER lexical_docs_counted AFTER INSERT OR DELETE OR UPDATE OF archived, length
        ON lexical_docs FOR EACH ROW EXECUTE FUNCTION lexical_count();
    CREATE FUNCTION lexical_move() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE lexical_docs SET archived = NEW.archived_at IS NOT NULL
        WHERE memory_id = NEW.id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER memories_lexical_move AFTER UPDATE OF archived_at ON memories
        FOR EACH ROW WHEN ((OLD.archived_at IS NULL) <> (NEW.archived_at IS NULL))
        EXECUTE FUNCTION lexical_move();

    CREATE TABLE ingest_events (
        id           {_KEY} PRIMARY KEY,
        user_id      {_KEY} NOT NULL,
        status       TEXT NOT NULL
                     CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
        request      TEXT NOT NULL,
        result       TEXT,
        error        TEXT,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_attempt {_KEY},
        created_at   {_KEY} NOT NULL,
        updated_at   {_KEY} NOT NULL
    );
    CREATE INDEX ingest_events_due ON ingest_events (status, next_attempt);
    CREATE INDEX ingest_events_by_user ON ingest_events (user_id);

    CREATE TABLE jobs (
        id          {_KEY} PRIMARY KEY,
        kind        TEXT NOT NULL,
        user_id     {_KEY},
        status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
        attempts    INTEGER NOT NULL DEFAULT 0,
        lease_until {_KEY},
        cursor      {_KEY} NOT NULL DEFAULT '',
        progress    TEXT NOT NULL DEFAULT '{{}}',
        error       TEXT,
        created_at  {_KEY} NOT NULL,
        updated_at  {_KEY} NOT NULL,
        finished_at {_KEY},
        tenant      {_KEY}
    );
    CREATE INDEX jobs_by_status ON jobs (status, created_at);
    CREATE INDEX jobs_by_tenant ON jobs (tenant, status, created_at);
    """,
    # 2: the change feed (SQLite's migration 11): triggers append every change a replica's
    # vector index must follow to ``change_log`` and NOTIFY its seq (``feed``).
    feed.SCHEMA,
    # 3: image memories (as SQLite's migration 12): a memory's modality, an
    # image memory's picture and CLIP vector beside it, removed with the memory.
    f"""
    ALTER TABLE memories ADD COLUMN modality TEXT NOT NULL DEFAULT 'text'
        CHECK (modality IN ('text', 'image'));
    CREATE TABLE memory_images (
        memory_id {_KEY} PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
        mime      TEXT NOT NULL,
        width     INTEGER NOT NULL,
        height    INTEGER NOT NULL,
        data      BYTEA NOT NULL,
        model     TEXT NOT NULL,
        embedding BYTEA NOT NULL
    );
    CREATE INDEX memories_images ON memories (user_id, id) WHERE modality = 'image';
    """,
    # 4: a vector is stored only in a live space (SQLite's migration 14, ``space_guard``).
    space_guard.SCHEMA,
    # 5: CLIP versions (SQLite's migration 15, ``image_versions``): a CLIP migration's target
    # vectors for every picture, beside the active ones until the switch.
    f"""
    CREATE TABLE image_shadow_vectors (
        memory_id {_KEY} PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
        model     TEXT NOT NULL,
        embedding BYTEA NOT NULL
    );
    """,
    # 6: the lexical postings (``postings``): one row per (memory, term) kept by a trigger on
    # the documents, backfilled from them; the documents' GIN index goes.
    postings.SCHEMA,
    # 7: the change log by user, for ``user_change_stamp`` (``feed``; SQLite's migration 16).
    feed.BY_USER_SCHEMA,
]


async def migrate(conn: AsyncConnection[Any]) -> int:
    """Bring the schema up to date in one transaction per script; returns the version."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = await (await conn.execute("SELECT max(version) AS v FROM schema_version")
                     ).fetchone()
        current = (row["v"] if isinstance(row, dict) else row[0] if row else 0) or 0
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {current} is newer than this gateway knows "
                f"({len(MIGRATIONS)}): refusing to open it")
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            await conn.execute(script.encode())
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    return len(MIGRATIONS)
