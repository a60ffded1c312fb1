"""The archive in the store: migration 6 on a store with data, and the lexical indexes kept
in step when memories are archived, edited, restored and deleted (real SQLite, no server)."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

from support import memory, opened

from gateway.domain.model import SearchFilters
from gateway.memory.service import utc_now
from gateway.store.sqlite import functions
from gateway.store.sqlite.migrations import MIGRATIONS
from gateway.store.sqlite.rows import vector_blob
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.types import Fold

ANY = SearchFilters()


def keyword(store: SQLiteStore, user: str, query: str, archived: bool = False) -> list[str]:
    found = asyncio.run(store.keyword_search(user, query, 10, ANY, archived=archived))
    return [memory_id for memory_id, _ in found]


def test_migration_6_keeps_existing_memories_searchable(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    functions.install(conn)
    for version, script in enumerate(MIGRATIONS[:5], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    old = memory(text="The lighthouse keeper rows to the island.")
    m = old.memory
    conn.execute(
        "INSERT INTO memories (id, user_id, text, metadata, priority, created_at, updated_at, "
        "embedding, embedding_model, occurred_at) VALUES (?, ?, ?, '{}', 5, ?, ?, ?, ?, ?)",
        (m.id, m.user_id, m.text, m.created_at, m.updated_at, vector_blob(old.embedding),
         m.embedding_model, m.occurred_at))
    conn.close()

    async def check() -> None:
        store = await opened(path)
        try:
            read = await store.get(m.id)
            assert read is not None
            assert (read.archived_at, read.summary_id, read.sources) == (None, None, None)
            page = await store.list_page(m.user_id, 10, None)
            assert [x.id for x in page] == [m.id]
        finally:
            await store.close()

    asyncio.run(check())
    store = asyncio.run(opened(path))
    try:
        assert keyword(store, m.user_id, "lighthouse") == [m.id]
    finally:
        asyncio.run(store.close())


def test_lexical_rows_follow_archive_edits_restore_and_delete(tmp_path: Path) -> None:
    store = asyncio.run(opened(tmp_path / "m.sqlite3"))
    try:
        sources = [memory(text="Ferry to the island at dawn."),
                   memory(text="Ferry tickets cost nine euros.")]
        summary = memory(text="Island ferry notes.", sources=tuple(s.memory.id for s in sources))
        asyncio.run(store.insert_many(sources))
        at = summary.memory.created_at
        asyncio.run(store.fold([Fold(summary, [s.memory for s in sources])], at))
        ids = {s.memory.id for s in sources}
        assert keyword(store, "alice", "ferry") == [summary.memory.id]
        assert set(keyword(store, "alice", "ferry", archived=True)) == ids
        first = asyncio.run(store.get(sources[0].memory.id))
        assert first is not None and first.summary_id == summary.memory.id
        edited = replace(first, text="Sailing boat at dawn.", updated_at=utc_now())
        assert asyncio.run(store.update(edited, first))
        assert keyword(store, "alice", "sailing") == []
        assert keyword(store, "alice", "sailing", archived=True) == [first.id]
        deleted = asyncio.run(store.delete(summary.memory.id, at))
        assert deleted is not None and {r.memory.id for r in deleted[1]} == ids
        assert keyword(store, "alice", "sailing") == [first.id]
        assert keyword(store, "alice", "ferry") == [sources[1].memory.id]
        assert keyword(store, "alice", "ferry sailing", archived=True) == []
        conn = sqlite3.connect(store.path)  # FTS5 checks its postings against the docs
        for table in ("lexical_index", "archive_lexical_index"):
            conn.execute(f"INSERT INTO {table} ({table}) VALUES ('integrity-check')")
        conn.close()
    finally:
        asyncio.run(store.close())
