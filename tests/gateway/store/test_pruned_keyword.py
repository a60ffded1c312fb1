"""Pruned keyword search (``gateway.store.sqlite.pruned``) against FTS5's exhaustive ranking.

The pruned top-k must be FTS5's top-k: the same scores (to rounding) on randomized corpora
with speakers, contexts, dates, repeated words, several users and filters, whichever level it
stops at. The term statistics it reads (``term_stats``) must match the live index under every
kind of write, leave nothing of an erased memory behind, and stay out of archive search.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from support import memory, opened, run

from gateway.domain.model import SearchFilters
from gateway.memory.service import utc_now
from gateway.store.sqlite import functions, pruned
from gateway.store.sqlite.lexical import match_expression
from gateway.store.sqlite.rows import filter_conditions
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.sqlite.term_stats import TRIGGERS, term_stats
from gateway.store.types import CONTEXT_WEIGHT

WORDS = ("coffee garden river guitar painting soccer camera hiking dinner beach friend trip "
         "school movie").split()
USERS = ("alice", "bob")


@pytest.fixture
def always_pruned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Prune even on small corpora (the store otherwise leaves them to FTS5), and record
    whether each search was answered by the pruned path."""
    monkeypatch.setattr(pruned, "SMALL_POSTINGS", 0)
    monkeypatch.setattr(pruned, "POSTINGS_PER_SCORE", 1)  # no scoring budget either
    answered: list[bool] = []
    real = pruned.top_k

    def recording(*args: object, **kwargs: object) -> list[tuple[str, float]] | None:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        answered.append(result is not None)
        return result

    monkeypatch.setattr(pruned, "top_k", recording)
    yield answered


def _text(rng: random.Random) -> str:
    words = rng.choices(WORDS[:6], k=rng.randint(1, 3)) + rng.sample(WORDS, rng.randint(1, 6))
    rng.shuffle(words)
    return " ".join(words)


def _corpus(rng: random.Random, count: int) -> list:
    rows = []
    for _ in range(count):
        day = rng.randint(1, 28)
        fields: dict[str, object] = {
            "occurred_at": f"2023-0{rng.randint(1, 9)}-{day:02d}T10:00:00.000000Z",
            "agent_id": rng.choice(["a1", "a2", None]),
        }
        if rng.random() < 0.4:
            fields["speaker"] = rng.choice(["Caroline", "Melanie"])
        item = memory(user=rng.choice(USERS), text=_text(rng), **fields)
        if rng.random() < 0.5:
            item = type(item)(item.memory, item.embedding, context=_text(rng))
        rows.append(item)
    return rows


def _exhaustive(store: SQLiteStore, user: str, query: str, k: int,
                filters: SearchFilters) -> list[tuple[str, float]]:
    """FTS5's own ranking of every filtered match (the path pruning replaces)."""
    conn = sqlite3.connect(store.path)
    try:
        key = functions.install(conn)
        expression = match_expression(key, user, query, with_dates=True)
        if expression is None:
            return []
        where, args = filter_conditions(user, filters)
        rows = conn.execute(
            "SELECT d.memory_id, bm25(lexical_index, 1.0, 1.0, ?) AS rank FROM lexical_index "
            "JOIN lexical_docs d ON d.doc = lexical_index.rowid "
            "JOIN memories m ON m.id = d.memory_id "
            f"WHERE lexical_index MATCH ? AND {' AND '.join(where)} ORDER BY rank LIMIT ?",
            [CONTEXT_WEIGHT, expression, *args, k]).fetchall()
        return [(row[0], -float(row[1])) for row in rows]
    finally:
        conn.close()


def _same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    """Equal scores rank for rank; ids equal except among ties at the cut."""
    assert [round(s, 9) for _, s in got] == [round(s, 9) for _, s in want]
    if want:
        cut = round(want[-1][1], 9)
        assert ({i for i, s in got if round(s, 9) > cut}
                == {i for i, s in want if round(s, 9) > cut})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pruned_top_k_equals_the_exhaustive_ranking(tmp_path: Path, seed: int,
                                                     always_pruned: list[bool]) -> None:
    rng = random.Random(seed)
    store = run(opened(tmp_path / "m.db"))
    run(store.insert_many(_corpus(rng, 600)))
    filters = [SearchFilters(), SearchFilters(agent_id="a1"),
               SearchFilters(occurred_after="2023-05-01T00:00:00.000000Z")]
    for _ in range(40):
        query = " ".join(rng.sample(WORDS, rng.randint(1, 5)))
        if rng.random() < 0.2:
            query += " may 2023"  # date terms
        k = rng.choice([0, 1, 5, 40])
        user, chosen = rng.choice(USERS), rng.choice(filters)
        got = run(store.keyword_search(user, query, k, chosen))
        _same_ranking(got, _exhaustive(store, user, query, k, chosen))
    assert sum(always_pruned) >= 20  # most searches were answered by pruning, not FTS5
    run(store.close())


def test_a_users_pruned_search_reads_only_that_users_memories(
        tmp_path: Path, always_pruned: list[bool]) -> None:
    store = run(opened(tmp_path / "m.db"))
    mine = [memory(user="alice", text=f"coffee river trip {i}") for i in range(30)]
    theirs = [memory(user="bob", text="coffee river trip coffee river") for _ in range(30)]
    run(store.insert_many(mine + theirs))
    found = run(store.keyword_search("alice", "coffee river trip", 10, SearchFilters()))
    assert always_pruned[-1] is True
    assert len(found) == 10
    assert {hit[0] for hit in found} <= {m.memory.id for m in mine}
    run(store.close())


def test_searches_it_would_give_up_on_go_to_fts5_with_the_same_answers(
        tmp_path: Path, always_pruned: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    """Six terms or more (a level would need more than MAX_GROUPS AND groups), or more
    memories to score than the postings allow: answered by FTS5, and answered the same."""
    store = run(opened(tmp_path / "m.db"))
    tied = [memory(user="alice", text=f"coffee river trip garden {i}") for i in range(200)]
    run(store.insert_many(tied + [memory(user="alice", text=" ".join(WORDS))]))
    long_query = "coffee river trip garden guitar painting"  # six terms, all present
    got = run(store.keyword_search("alice", long_query, 10, SearchFilters()))
    assert always_pruned[-1] is False
    _same_ranking(got, _exhaustive(store, "alice", long_query, 10, SearchFilters()))
    got = run(store.keyword_search("alice", "coffee river trip", 10, SearchFilters()))
    assert always_pruned[-1] is True  # 201 tie on all three terms: scored within budget
    monkeypatch.setattr(pruned, "POSTINGS_PER_SCORE", 10**6)  # budget: 2k = 20 memories
    again = run(store.keyword_search("alice", "coffee river trip", 10, SearchFilters()))
    assert always_pruned[-1] is False
    _same_ranking(again, _exhaustive(store, "alice", "coffee river trip", 10, SearchFilters()))
    _same_ranking(got, again)
    run(store.close())


def _stats(store: SQLiteStore) -> dict[str, int]:
    return dict(run(store.run(lambda: store.conn.execute(
        "SELECT term, docs FROM lexical_terms").fetchall())))


def _vocabulary(store: SQLiteStore) -> dict[str, int]:
    """Documents per term of the live FTS5 index (what ``bm25()`` counts for idf)."""
    def read() -> dict[str, int]:
        conn = store.conn
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.live_vocab "
                     "USING fts5vocab(main, lexical_index, row)")
        return dict(conn.execute("SELECT term, doc FROM temp.live_vocab").fetchall())
    return run(store.run(read))


def test_term_statistics_follow_every_write(tmp_path: Path) -> None:
    """Adds, edits, archive and restore, deletes and erasure: after each, the statistics hold
    exactly the live index's terms and document counts, and their bounds hold."""
    rng = random.Random(11)
    store = run(opened(tmp_path / "m.db"))
    items = _corpus(rng, 80)
    run(store.insert_many(items))
    live = {item.memory.id: item.memory for item in items}
    archived: set[str] = set()
    for step in range(40):
        op = rng.choice(["edit", "archive", "restore", "delete", "erase", "add"])
        key = rng.choice(sorted(live))
        if op == "add":
            fresh = _corpus(rng, 3)
            run(store.insert_many(fresh))
            live.update({item.memory.id: item.memory for item in fresh})
        elif op == "edit":
            before = live[key]
            after = replace(before, text=_text(rng), updated_at=utc_now())
            assert run(store.update(after, before))
            live[key] = after
        elif op in ("archive", "restore"):
            stamp = utc_now() if op == "archive" else None
            run(store.run(lambda s=stamp, i=key: store.conn.execute(
                "UPDATE memories SET archived_at = ? WHERE id = ?", (s, i))))
            (archived.add if op == "archive" else archived.discard)(key)
        elif op == "delete":
            run(store.delete(key, utc_now()))
            del live[key]
            archived.discard(key)
        else:
            run(store.erase(key, utc_now()))
            del live[key]
            archived.discard(key)
        assert _stats(store) == _vocabulary(store), (step, op)
    _bounds_hold(store)
    run(store.close())


def _bounds_hold(store: SQLiteStore) -> None:
    def check() -> None:
        conn = store.conn
        key = store._lexical_key
        rows = conn.execute(
            "SELECT m.user_id, coalesce(m.speaker || ': ', '') || m.text, m.occurred_at, "
            "m.context FROM memories m WHERE m.archived_at IS NULL").fetchall()
        bounds = {row[0]: row[1:] for row in conn.execute(
            "SELECT term, body, occurred, context, shortest FROM lexical_terms")}
        for user, said, occurred_at, context in rows:
            for term, body, occurred, ctx, size in json.loads(
                    term_stats(key.user(user), said, occurred_at, context)):
                most = bounds[term]
                assert body <= most[0] and occurred <= most[1] and ctx <= most[2]
                assert size >= most[3]
    run(store.run(check))


def test_an_erased_memorys_terms_leave_the_statistics(tmp_path: Path) -> None:
    store = run(opened(tmp_path / "m.db"))
    secret = memory(text="plover quartz locker")
    run(store.insert_many([secret, memory(text="locker room")]))
    key = store._lexical_key.user("alice")
    assert {key + "plover", key + "quartz"} <= set(_stats(store))
    run(store.erase(secret.memory.id, utc_now()))
    terms = set(_stats(store))
    assert key + "plover" not in terms and key + "quartz" not in terms
    assert _stats(store)[key + "locker"] == 1
    run(store.close())


def test_archived_memories_leave_pruned_search_and_archive_search_finds_them(
        tmp_path: Path, always_pruned: list[bool]) -> None:
    store = run(opened(tmp_path / "m.db"))
    kept = [memory(text=f"sailing fjord bergen {i}") for i in range(5)]
    gone = memory(text="sailing fjord bergen sailing")
    run(store.insert_many([*kept, gone]))
    run(store.run(lambda: store.conn.execute(
        "UPDATE memories SET archived_at = ? WHERE id = ?", (utc_now(), gone.memory.id))))
    found = run(store.keyword_search("alice", "sailing fjord", 10, SearchFilters()))
    assert always_pruned[-1] is True
    assert {hit[0] for hit in found} == {m.memory.id for m in kept}
    archived = run(store.keyword_search("alice", "sailing fjord", 10, SearchFilters(),
                                        archived=True))
    assert [hit[0] for hit in archived] == [gone.memory.id]
    run(store.close())


def test_pruning_gives_up_to_fts5_where_it_cannot_help(tmp_path: Path,
                                                       always_pruned: list[bool]) -> None:
    """Weights of 0 (FTS5 then matches some columns only) go to FTS5, with its results."""
    store = run(opened(tmp_path / "m.db"))
    run(store.insert_many([memory(text="coffee by the river"), memory(text="river walk")]))
    found = run(store.keyword_search("alice", "river coffee", 10, SearchFilters(),
                                     date_weight=0.0))
    assert always_pruned[-1] is False
    assert len(found) == 2
    run(store.close())


def test_the_migration_fills_statistics_for_an_existing_store(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = run(opened(path))
    run(store.insert_many(_corpus(random.Random(5), 50)))
    expected = _vocabulary(store)
    guard = ("memory_in_active_space", "memory_stays_in_active_space",  # migration 14's
             "shadow_in_target_space", "shadow_stays_in_target_space")
    run(store.run(lambda: store.conn.executescript(  # back to the store before migration 13
        "".join(f"DROP TRIGGER {name};" for name in (*TRIGGERS, *guard))
        + "DROP TABLE lexical_terms; DROP TABLE image_shadow_vectors; "  # and migration 15's
        "DROP INDEX change_log_by_user; "  # and 16's
        "PRAGMA user_version = 12;")))
    run(store.close())
    store = run(opened(path))
    assert _stats(store) == expected
    run(store.close())
