"""The SQLite store on a real file: WAL, migrations, atomic batches, history, filters."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import memory, opened, run

from gateway.domain.model import SearchFilters, StoredMemory
from gateway.memory.service import utc_now
from gateway.store.sqlite.migrations import MIGRATIONS
from gateway.store.types import RowConflict


def test_open_sets_wal_and_schema_version(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        await store.close()

    run(scenario())
    conn = sqlite3.connect(tmp_path / "m.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_files_are_private_new_old_and_copied(tmp_path: Path) -> None:
    """Issue 19 (finding 9): the database, its WAL and shared memory and a backup copy are
    0600 whatever the umask; a file an older gateway left 0644 is tightened at open."""
    import os
    import stat

    from gateway.store.sqlite.files import copy_online

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    previous = os.umask(0o022)
    try:
        old = tmp_path / "old.db"
        sqlite3.connect(old).close()
        assert mode(old) == 0o644
        for path in (tmp_path / "m.db", old):
            store = run(opened(path))
            run(store.insert_many([memory()]))
            assert [mode(Path(str(path) + s)) for s in ("", "-wal", "-shm")] == [0o600] * 3
            run(store.close())
        assert copy_online(tmp_path / "m.db", tmp_path / "copy.db") == "ok"
        assert mode(tmp_path / "copy.db") == 0o600
    finally:
        os.umask(previous)


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db")
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        run(opened(tmp_path / "m.db"))


def test_batch_insert_is_all_or_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        first = memory()
        await store.insert_many([first])
        duplicate = StoredMemory(first.memory, first.embedding)
        with pytest.raises(RowConflict):
            await store.insert_many([memory(text="new"), duplicate])
        assert await store.count() == 1
        await store.close()

    run(scenario())


def test_update_is_compare_and_swap_and_history_is_append_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        item = memory()
        await store.insert_many([item])
        changed = replace(item.memory, text="changed", updated_at=utc_now())
        assert await store.update(changed, item.memory)
        assert not await store.update(replace(changed, text="stale"), item.memory)
        assert (await store.get(item.memory.id)).text == "changed"  # type: ignore[union-attr]
        await store.delete(item.memory.id, utc_now())
        events = await store.history(item.memory.id)
        assert [e.event for e in events] == ["ADD", "UPDATE", "DELETE"]
        assert events[1].old_text == "hello" and events[1].new_text == "changed"
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await store.run(lambda: store.conn.execute("UPDATE history SET event = 'ADD'"))
        await store.close()

    run(scenario())


def test_filters_match_scopes_metadata_and_time(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        a = memory(agent_id="planner", metadata={"kind": "fact", "n": 3, "ok": True, 'we"ird': 1})
        b = memory(run_id="r1", metadata={"kind": "event", "n": 3.5, "ok": False})
        c = memory(user="bob", agent_id="planner")
        await store.insert_many([a, b, c])

        async def ids(**conditions: object) -> set[str]:
            return await store.filter_ids("alice", SearchFilters(**conditions))  # type: ignore[arg-type]

        assert await ids(agent_id="planner") == {a.memory.id}
        assert await ids(run_id="r1") == {b.memory.id}
        assert await ids(metadata={"kind": "event"}) == {b.memory.id}
        assert await ids(metadata={"n": 3}) == {a.memory.id}
        assert await ids(metadata={"ok": True}) == {a.memory.id}
        assert await ids(metadata={"ok": 1}) == set()  # booleans are not numbers
        assert await ids(metadata={'we"ird': 1}) == {a.memory.id}
        assert await ids(metadata={"kind": "fact", "n": 4}) == set()
        assert await ids(created_after=b.memory.created_at) == {b.memory.id}
        assert await ids(created_before=b.memory.created_at) == {a.memory.id}
        await store.close()

    run(scenario())


def test_vectors_round_trip_for_index_rebuild(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        item = memory()
        await store.insert_many([item])
        [(user, key, vector)] = await store.vectors()
        assert (user, key) == ("alice", item.memory.id)
        np.testing.assert_array_equal(vector, item.embedding)
        await store.close()

    run(scenario())
