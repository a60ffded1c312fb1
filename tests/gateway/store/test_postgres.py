"""What only the PostgreSQL backend has: its migrations from an empty database, its pool,
writers on separate connections (two stores: two replicas) kept apart by the generation
checks, BM25 scores equal to SQLite's FTS5, the lexical switch, and the server going away."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from support import memory, run
from support.postgres import PostgresServer

from gateway.domain.model import SearchFilters
from gateway.errors import StorageUnavailable
from gateway.store.postgres.keys import PostgresKeyTable
from gateway.store.postgres.migrations import MIGRATIONS
from gateway.store.postgres.store import PostgresStore
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.types import Fold, KeyRow, StaleWrite

ANY = SearchFilters()
T0, T1 = "2024-01-01T00:00:00.000000Z", "2024-01-02T00:00:00.000000Z"


def test_migrations_build_an_empty_database_once_and_refuse_a_newer_one(
        postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    assert run(store.open()) == len(MIGRATIONS)
    run(store.close())
    again = PostgresStore(postgres_url)
    assert run(again.open()) == len(MIGRATIONS)  # nothing left to apply
    run(again.close())
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))
        conn.execute("INSERT INTO schema_version VALUES (%s)", (len(MIGRATIONS) + 1,))
    with pytest.raises(RuntimeError, match="newer"):
        run(PostgresStore(postgres_url).open())


def test_two_stores_opening_together_migrate_once(postgres_url: str) -> None:
    stores = [PostgresStore(postgres_url) for _ in range(3)]

    async def scenario() -> list[int]:
        return list(await asyncio.gather(*(s.open() for s in stores)))

    assert run(scenario()) == [len(MIGRATIONS)] * 3
    for store in stores:
        run(store.close())


@pytest.fixture
def two_stores(postgres_url: str):  # type: ignore[no-untyped-def]
    """Two stores on one database: two pools, as two replicas have."""
    a, b = PostgresStore(postgres_url), PostgresStore(postgres_url)
    run(a.open())
    run(b.open())
    yield a, b
    run(a.close())
    run(b.close())


def test_writers_on_two_connections_keep_the_generation_checks(two_stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_stores
    item = memory(text="base").memory
    run(a.insert_many([memory(id=item.id, text="base", created_at=item.created_at,
                              updated_at=item.updated_at)]))
    stored = run(b.get(item.id))
    assert stored is not None

    async def race() -> list[bool]:
        return list(await asyncio.gather(
            a.update(replace(stored, text="from a", updated_at=T1), stored),
            b.update(replace(stored, text="from b", updated_at=T1), stored)))

    outcomes = run(race())
    assert sorted(outcomes) == [False, True]  # exactly one writer wins
    winner = "from a" if outcomes[0] else "from b"
    assert run(b.get(item.id)).text == winner  # type: ignore[union-attr]
    assert [e.event for e in run(a.history(item.id))] == ["ADD", "UPDATE"]
    # a fold of what b changed meanwhile writes nothing
    current = run(a.get(item.id))
    assert current is not None
    run(b.update(replace(current, text="moved on", updated_at="2024-03-01T00:00:00.000000Z"),
                 current))
    summary = memory(text="summary", sources=(item.id,))
    with pytest.raises(StaleWrite):
        run(a.fold([Fold(summary, [current])], T1))
    assert run(b.get(summary.memory.id)) is None


def test_jobs_and_events_are_claimed_once_across_stores(two_stores) -> None:  # type: ignore[no-untyped-def]
    a, b = two_stores
    for i in range(6):
        run(a.create_job(f"j{i}", "merge", f"u{i}", T0))
        run(a.create_event(f"e{i}", "alice", {"i": i}, T0))

    async def drain(store: PostgresStore) -> tuple[list[str], list[str]]:
        jobs, events = [], []
        while (job := await store.claim_job(T1, "2999-01-01T00:00:00.000000Z")) is not None:
            jobs.append(job.id)
        while (event := await store.claim_event(T1)) is not None:
            events.append(event.id)
        return jobs, events

    async def both() -> list[tuple[list[str], list[str]]]:
        return list(await asyncio.gather(drain(a), drain(b)))

    (jobs_a, events_a), (jobs_b, events_b) = run(both())
    assert sorted(jobs_a + jobs_b) == [f"j{i}" for i in range(6)]
    assert sorted(events_a + events_b) == [f"e{i}" for i in range(6)]


def test_a_small_pool_serves_many_concurrent_operations(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, pool_max=2)
    run(store.open())
    items = [memory(text=f"note {i}") for i in range(20)]
    run(store.insert_many(items))

    async def many() -> list[object]:
        return list(await asyncio.gather(*(store.get(i.memory.id) for i in items)))

    assert [m.id for m in run(many())] == [i.memory.id for i in items]  # type: ignore[attr-defined]
    run(store.close())
    assert not store.is_open


CORPUS = [
    ("alice", "Coffee in the morning, coffee at noon", "Ann", "2023-05-08T12:00:00Z", None),
    ("alice", "We walked to the harbour on Friday", None, "2023-05-12T12:00:00Z",
     "Ann: the harbour was lovely; Bob: the boats!"),
    ("alice", "Bob likes tea more than coffee", "Bob", "2023-06-01T09:00:00Z", None),
    ("alice", "A long note about painting, hiking, running and coffee tasting at a fair",
     None, "2024-01-01T00:00:00Z", "coffee fair in May"),
    ("alice", "archived: coffee beans from the harbour market", None, "2023-05-08T00:00:00Z",
     None),
    ("bob", "coffee coffee coffee", None, "2023-05-08T12:00:00Z", None),
    ("bob", "harbour", None, "2023-05-08T12:00:00Z", None),
]


def test_bm25_scores_equal_sqlite_fts5(postgres_url: str, tmp_path: Path) -> None:
    """The same memories in both backends rank the same ids with the same scores."""
    items = [replace(memory(user=user, text=text, speaker=speaker, occurred_at=when,
                            archived_at=T0 if text.startswith("archived") else None),
                     context=context) for user, text, speaker, when, context in CORPUS]
    lite, pg = SQLiteStore(tmp_path / "m.sqlite3"), PostgresStore(postgres_url)
    for store in (lite, pg):
        run(store.open())
        run(store.insert_many(items))
    cases = [("coffee", {}), ("Coffee harbour May 2023", {}), ("harbour", {"context_weight": 0}),
             ("May 2023 coffee", {"date_weight": 0.5}), ("harbour coffee", {"archived": True}),
             ("Ann painting", {"date_weight": 0, "context_weight": 0})]
    for query, options in cases:
        for user in ("alice", "bob"):
            want = run(lite.keyword_search(user, query, 10, ANY, **options))  # type: ignore[arg-type]
            got = run(pg.keyword_search(user, query, 10, ANY, **options))  # type: ignore[arg-type]
            assert [i for i, _ in got] == [i for i, _ in want], (query, options, user)
            assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9), query
            assert want or user == "bob" or options.get("archived")  # a case that ranks
    # an update re-indexes, a delete drops the document, in both
    first = items[0].memory
    for store in (lite, pg):
        run(store.update(replace(first, text="green tea only", updated_at=T1), first))
        run(store.delete(items[2].memory.id, T1))
    for query in ("coffee", "tea", "green"):
        want = run(lite.keyword_search("alice", query, 10, ANY))
        got = run(pg.keyword_search("alice", query, 10, ANY))
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9)
    run(lite.close())
    run(pg.close())


def test_the_lexical_switch_empties_and_rebuilds_the_index(postgres_url: str) -> None:
    off = PostgresStore(postgres_url, lexical_index=False)
    run(off.open())
    item = memory(text="a quiet harbour")
    run(off.insert_many([item]))
    assert run(off.keyword_search("alice", "harbour", 5, ANY)) == []
    run(off.close())
    on = PostgresStore(postgres_url)
    run(on.open())  # rebuilt from the memories
    assert [h[0] for h in run(on.keyword_search("alice", "harbour", 5, ANY))] == [
        item.memory.id]
    run(on.close())


def test_an_unreachable_server_is_unavailable_then_recovers(
        postgres_server: PostgresServer, postgres_url: str) -> None:
    store = PostgresStore(postgres_url, connect_wait_s=2.0)
    run(store.open())
    keys = PostgresKeyTable(postgres_url)
    keys.open()
    item = memory(text="survives a restart")
    run(store.insert_many([item]))
    postgres_server.stop()
    try:
        with pytest.raises(StorageUnavailable):
            run(store.get(item.memory.id))
    finally:
        postgres_server.start()
    assert run(store.get(item.memory.id)) == item.memory  # the pool reconnected
    row = KeyRow("k1", "h", "acme", "read", "", None, T0, None, None)
    keys.insert(row)  # the key table reconnected too
    assert keys.find("k1") == row
    keys.close()
    run(store.close())


def test_after_a_long_outage_the_first_request_does_not_wait_out_the_pools_backoff(
        postgres_server: PostgresServer, postgres_url: str) -> None:
    """The pool retries a lost connection with doubling pauses; after 8 s down the next
    retry would be due 7 s later, past the request's 5 s wait (CI saw that 503). Given up
    after ``RECONNECT_GIVE_UP_S``, a fresh attempt starts for the request at once."""
    store = PostgresStore(postgres_url)  # the shipped 5 s wait for a connection
    run(store.open())
    item = memory(text="still here after the outage")
    run(store.insert_many([item]))
    postgres_server.stop()
    try:
        down_since = time.monotonic()
        while time.monotonic() - down_since < 8.0:  # requests keep failing meanwhile
            with pytest.raises(StorageUnavailable):
                run(store.get(item.memory.id))
    finally:
        postgres_server.start()
    assert run(store.get(item.memory.id)) == item.memory
    run(store.close())
