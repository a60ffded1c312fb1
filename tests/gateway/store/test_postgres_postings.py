"""The PostgreSQL postings (``gateway.store.postgres.postings``): every write path (insert,
update, archive, ingest plan, delete and restore, erase, a user's deletion, the lexical
switch) keeps them equal to the documents they are derived from, keyword scores stay
SQLite's through those writes, migration 6 backfills a database written before it, and the
search stays on the term index without statistics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from support import memory, run

from gateway.domain.model import SearchFilters
from gateway.store.postgres import postings
from gateway.store.postgres.migrations import MIGRATIONS
from gateway.store.postgres.store import PostgresStore
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.types import Change, Fold, StaleWrite, WritePlan

ANY = SearchFilters()
T0, T1, T2 = ("2024-01-01T00:00:00.000000Z", "2024-01-02T00:00:00.000000Z",
              "2024-01-03T00:00:00.000000Z")
QUERIES = ("coffee", "harbour coffee", "tea green", "boat May 2023", "morning harbour boat")

# The postings a document should have: its terms' counts per column, its length and
# archive flag, straight from the document's tsvector.
_DERIVED = """
SELECT d.memory_id, u.lexeme, d.archived, d.length,
       count(*) FILTER (WHERE w = 'A') AS text_n, count(*) FILTER (WHERE w = 'B') AS date_n,
       count(*) FILTER (WHERE w = 'C') AS context_n
FROM lexical_docs d
CROSS JOIN LATERAL unnest(d.terms) AS u (lexeme, positions, weights)
CROSS JOIN LATERAL unnest(u.weights) AS w
GROUP BY d.memory_id, u.lexeme, d.archived, d.length
"""
_STORED = ("SELECT memory_id, lexeme, archived, length, text_n, date_n, context_n "
           "FROM lexical_postings")


def postings_match_documents(url: str) -> int:
    """Assert the postings are exactly those derived from the documents; returns how many."""
    with psycopg.connect(url) as conn:
        stored = sorted(conn.execute(_STORED).fetchall())
        derived = sorted(conn.execute(_DERIVED).fetchall())
    assert stored == derived
    return len(stored)


def same_ranking(lite: SQLiteStore, pg: PostgresStore, users: tuple[str, ...]) -> None:
    for user in users:
        for query in QUERIES:
            for archived in (False, True):
                want = run(lite.keyword_search(user, query, 10, ANY, archived=archived))
                got = run(pg.keyword_search(user, query, 10, ANY, archived=archived))
                assert [i for i, _ in got] == [i for i, _ in want], (user, query, archived)
                assert [s for _, s in got] == pytest.approx([s for _, s in want], rel=1e-9)


def corpus() -> list:
    texts = [("alice", "coffee at the harbour every morning", "Ann"),
             ("alice", "green tea in the morning", None),
             ("alice", "a boat in the harbour, coffee on the boat", "Ben"),
             ("alice", "coffee coffee coffee", None),
             ("bob", "harbour boat tea", None),
             ("bob", "coffee and tea", "Cy")]
    return [replace(memory(user=user, text=text, speaker=speaker,
                           occurred_at="2023-05-08T12:00:00Z"),
                    context="a trip to the sea" if speaker else None)
            for user, text, speaker in texts]


def test_every_write_path_keeps_postings_and_sqlite_scores(postgres_url: str,
                                                          tmp_path: Path) -> None:
    items = corpus()
    lite, pg = SQLiteStore(tmp_path / "m.sqlite3"), PostgresStore(postgres_url)
    stores = (lite, pg)
    for store in stores:
        run(store.open())
        run(store.insert_many(items))
    assert postings_match_documents(postgres_url) > len(items)
    same_ranking(lite, pg, ("alice", "bob"))

    first, second, third, fourth = (item.memory for item in items[:4])
    updated = replace(first, text="tea by the boat", updated_at=T1)
    summary = memory(text="coffee summary of the harbour", sources=(second.id, third.id),
                     created_at=T1, updated_at=T1)
    for store in stores:  # update, then archive two under a summary
        assert run(store.update(updated, first))
        run(store.fold([Fold(summary, [second, third])], T1))
    assert postings_match_documents(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        archived = {row[0] for row in conn.execute(
            "SELECT DISTINCT memory_id FROM lexical_postings WHERE archived")}
    assert archived == {second.id, third.id}
    same_ranking(lite, pg, ("alice",))

    fifth, sixth = (item.memory for item in items[4:6])
    added = memory(user="bob", text="a harbour boat at dawn", created_at=T1, updated_at=T1)
    plan = WritePlan(inserts=[added], changes=[Change(fifth, replace(
        fifth, text="coffee boat", updated_at=T1))], deletes=[sixth], at=T1)
    stale = WritePlan(inserts=[memory(user="bob", text="never coffee")],
                      changes=[Change(sixth, replace(sixth, text="lost", updated_at=T2))])
    for store in stores:  # one ingest plan commits; a stale one leaves nothing behind
        run(store.apply(plan))
        with pytest.raises(StaleWrite):
            run(store.apply(stale))
    assert postings_match_documents(postgres_url)
    same_ranking(lite, pg, ("bob",))

    for store in stores:  # deleting the summary restores its sources; erase; a user goes
        run(store.delete(summary.memory.id, T2))
        run(store.erase(fourth.id, T2))
        run(store.delete_user("bob", T2))
    assert postings_match_documents(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        left = {row[0] for row in conn.execute("SELECT memory_id FROM lexical_postings")}
    assert left == {updated.id, second.id, third.id}
    same_ranking(lite, pg, ("alice", "bob"))
    for store in stores:
        run(store.close())

    # the lexical switch: off empties the postings, on rebuilds them from the memories
    off = PostgresStore(postgres_url, lexical_index=False)
    run(off.open())
    run(off.close())
    assert postings_match_documents(postgres_url) == 0
    on = PostgresStore(postgres_url)
    run(on.open())
    assert postings_match_documents(postgres_url) > 0
    lite = SQLiteStore(tmp_path / "m.sqlite3")
    run(lite.open())
    same_ranking(lite, on, ("alice",))
    run(lite.close())
    run(on.close())


def test_migration_6_backfills_the_postings_of_an_older_database(postgres_url: str) -> None:
    pg = PostgresStore(postgres_url)
    run(pg.open())
    items = corpus()
    run(pg.insert_many(items))
    before = {q: run(pg.keyword_search("alice", q, 10, ANY)) for q in QUERIES}
    run(pg.close())
    assert len(MIGRATIONS) == 7
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # back to version 5
        conn.execute("DROP TABLE lexical_postings")
        conn.execute("DROP TRIGGER lexical_docs_posted ON lexical_docs")
        conn.execute("DROP FUNCTION lexical_post()")
        conn.execute("CREATE INDEX lexical_docs_terms ON lexical_docs USING GIN (terms)")
        conn.execute("DROP INDEX change_log_by_user")  # and migration 7
        conn.execute("DELETE FROM schema_version WHERE version >= 6")
    again = PostgresStore(postgres_url)
    assert run(again.open()) == 7
    assert postings_match_documents(postgres_url) > len(items)
    assert {q: run(again.keyword_search("alice", q, 10, ANY)) for q in QUERIES} == before
    assert any(before.values())
    run(again.close())


def test_a_search_reads_the_postings_index_without_statistics(postgres_url: str) -> None:
    """The planner stays on the term index on a table it has never analysed (the search runs
    as one statement, without a transaction that could turn sequential scans off)."""
    pg = PostgresStore(postgres_url)
    run(pg.open())
    words = [f"word{i}" for i in range(300)]
    run(pg.insert_many([memory(text=" ".join(words[(i * 7 + j) % 300] for j in range(12)))
                        for i in range(1500)]))
    sql, params = postings.statement(pg._lexicon, "alice", "word3 word42 word77", 10, ANY,
                                     date_weight=1.0, archived=False, context_weight=0.3)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_reset()")
        stats = conn.execute("SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables "
                             "WHERE relname = 'lexical_postings'").fetchone()
        plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {sql}", params))
    assert stats is not None and stats[0] is None
    assert "lexical_postings_by_lexeme" in plan, plan
    assert "Seq Scan on lexical_postings" not in plan, plan
    hits = run(pg.keyword_search("alice", "word3 word42 word77", 10, ANY))
    assert len(hits) == 10
    run(pg.close())
