"""Reads run on their own SQLite connections: they never queue behind the writer."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from support import memory, opened, run

from gateway.domain.model import SearchFilters
from gateway.store.sqlite import keyword
from gateway.store.sqlite.store import KEYWORD_THREAD_NICE


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


def test_keyword_search_runs_off_the_writer_at_a_lower_priority(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyword search (issue 20) runs on threads of its own, niced below the writer, so a burst
    of searches yields the cores to a write; it never runs on the writer's thread."""
    seen: list[tuple[str, int]] = []
    real = keyword.keyword_search

    def recording(*args: object, **kwargs: object) -> list[tuple[str, float]]:
        seen.append((threading.current_thread().name,
                     os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(keyword, "keyword_search", recording)

    async def scenario() -> int:
        store = await opened(tmp_path / "m.db")
        await store.insert_many([memory(text="the blue flowerpot")])
        found = await store.keyword_search("alice", "flowerpot", 5, SearchFilters())
        assert len(found) == 1
        writer = await store.run(
            lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        await store.close()
        return writer

    writer_nice = run(scenario())
    name, nice = seen[-1]
    assert name.startswith("sqlite-keyword")
    assert nice == min(19, writer_nice + KEYWORD_THREAD_NICE)
