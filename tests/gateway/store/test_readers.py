"""Reads run on their own SQLite connections: they never queue behind the writer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from support import memory, opened, run

from gateway.domain.model import SearchFilters


def test_reads_complete_while_a_write_transaction_is_open(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        stored = memory(text="the spare key is under the blue flowerpot")
        await store.insert_many([stored])
        entered, release = threading.Event(), threading.Event()

        def hold_the_writer() -> None:  # a write transaction that stays open until released
            conn = store.conn
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE memories SET priority = 9")
            entered.set()
            release.wait(30)
            conn.rollback()

        writer = asyncio.ensure_future(store.run(hold_the_writer))
        assert await asyncio.to_thread(entered.wait, 30), "the writer never started"
        try:
            found = await asyncio.wait_for(store.get_many([stored.memory.id]), 10)
            keyword = await asyncio.wait_for(
                store.keyword_search("alice", "flowerpot", 5, SearchFilters()), 10)
            assert found[stored.memory.id].priority == 5  # the committed state, not the open one
            assert [hit[0] for hit in keyword] == [stored.memory.id]
            assert not writer.done()  # answered while the writer still held its transaction
        finally:
            release.set()
            await writer
        await store.close()

    run(scenario())
