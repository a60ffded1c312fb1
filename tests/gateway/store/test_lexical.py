"""The lexical index on a real SQLite file: analysis, BM25 search, per-user scoping, filters,
the migration's backfill, and consistency with the memories under random writes."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import memory, opened, run

from gateway.domain.model import SearchFilters
from gateway.memory.service import utc_now
from gateway.store.analyzer import MAX_QUERY_TERMS, date_terms, query_terms, terms
from gateway.store.sqlite import functions
from gateway.store.sqlite.lexical import LexicalKey
from gateway.store.sqlite.migrations import MIGRATIONS
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.types import RowConflict

HOSTILE = ['"', '"unbalanced', "a AND b", "OR", "NOT x", "NEAR(a b)", "x*", "^start",
           "body: x", "{body occurred}: x", "(((", "a' OR '1'='1", "-x", "+", "x" * 10_000,
           "\x00", "🙂", "   ", "the of and"]


def test_analysis_stems_folds_and_drops_function_words() -> None:
    assert terms("The CAFÉS were running!") == ["cafe", "run"]
    assert query_terms("running runs RUN") == ["run"]
    assert terms("?!... --- the of and") == []
    assert terms("What did Caroline do, and how?") == ["carolin"]  # analyzer version 2
    assert terms("When in May?") == ["when", "may"]
    assert terms("order #B-1234 at 10:30") == ["order", "b", "1234", "10", "30"]
    assert date_terms("2023-05-08T13:56:00.000000Z") == ["8", "may", "2023"]
    assert len(query_terms(" ".join(f"w{i}" for i in range(500)))) == MAX_QUERY_TERMS


def test_a_query_drops_question_words_unless_it_has_nothing_else() -> None:
    assert query_terms("When did Jon go to the fair?") == ["jon", "go", "fair"]
    assert query_terms("Who met whom, where and why?") == ["met"]
    assert query_terms("When?") == ["when"]  # nothing else to search
    assert query_terms("why whom") == ["whi", "whom"]
    assert terms("When and where we met") == ["when", "where", "met"]  # the index keeps them


def _store(tmp_path: Path) -> SQLiteStore:
    return run(opened(tmp_path / "m.db"))


def test_keyword_search_ranks_matches_and_stays_in_the_user(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        rare = memory(text="Ticket ZX-4471 was escalated to Priyanka")
        common = [memory(text=f"The deploy ran fine on day {i}") for i in range(5)]
        other = memory(user="bob", text="Ticket ZX-4471 belongs to bob")
        await store.insert_many([rare, *common, other])
        found = await store.keyword_search("alice", "who has zx-4471?", 10, SearchFilters())
        assert [hit[0] for hit in found] == [rare.memory.id]
        assert found[0][1] > 0
        both = await store.keyword_search("alice", "Priyanka deploy", 10, SearchFilters())
        assert both[0][0] == rare.memory.id  # the rare term outweighs a common one
        assert {hit[0] for hit in both} == {rare.memory.id} | {c.memory.id for c in common}
        assert await store.keyword_search("carol", "ticket", 10, SearchFilters()) == []
        assert await store.keyword_search("alice", "the of and ?!", 10, SearchFilters()) == []
        assert len(await store.keyword_search("alice", "deploy", 3, SearchFilters())) == 3
        await store.close()

    run(scenario())


def test_every_indexed_term_carries_its_users_key(tmp_path: Path) -> None:
    """A user's search reads only that user's postings: no term is shared across users."""

    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        await store.insert_many([memory(user=u, text="coffee with the team in May")
                                 for u in ("alice", "bob", "carol")])
        await store.close()

    run(scenario())
    conn = sqlite3.connect(tmp_path / "m.db")
    conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, lexical_index, row)")
    rows = conn.execute("SELECT term, doc FROM temp.vocab").fetchall()
    key = _stored_key(conn)
    size = len(key.user("alice"))
    keys = {key.user(u) for u in ("alice", "bob", "carol")}
    assert len(keys) == 3
    assert rows and all(term[:size] in keys and doc == 1 for term, doc in rows)
    assert set(Counter(term[size:] for term, _ in rows).values()) == {3}


def _stored_key(conn: sqlite3.Connection) -> LexicalKey:
    key = LexicalKey()
    key.load(conn)
    return key


def _postings(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    conn.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, lexical_index, row)")
    terms = {row[0] for row in conn.execute("SELECT term FROM temp.vocab")}
    conn.close()
    return terms


def test_the_user_key_is_salted_per_store_and_has_64_bits_or_more(tmp_path: Path) -> None:
    """Issue 19 (finding 7): the key folded into every posting was a 40-bit unsalted hash of
    the user id, the same in every store; now a keyed hash with a secret made per store."""
    for name in ("one.db", "two.db"):
        store = run(opened(tmp_path / name))
        run(store.insert_many([memory(user="alice", text="coffee")]))
        run(store.close())
    one, two = ({t for t in _postings(tmp_path / name) if t.endswith("coffe")}
                for name in ("one.db", "two.db"))
    assert len(one) == len(two) == 1 and one != two  # same user, same word, other store
    [term] = one
    key_chars = len(term) - len("coffe")
    assert key_chars * 5 >= 64  # base32: 5 bits a character
    conn = sqlite3.connect(tmp_path / "one.db")
    secret = conn.execute("SELECT secret FROM store_secret").fetchone()[0]
    assert len(secret) >= 16
    assert _stored_key(conn).user("alice") == term[:key_chars]
    conn.close()


def test_the_salting_migration_rekeys_existing_rows(tmp_path: Path) -> None:
    """A store written before the per-store secret (schema 8, the 40-bit unsalted key) keeps
    its keyword results, and none of its postings carries the old key afterwards."""
    path = tmp_path / "m.db"
    conn = sqlite3.connect(path, isolation_level=None)
    functions.install(conn)
    for version, script in enumerate(MIGRATIONS[:8], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    at = "2023-05-08T12:00:00.000000Z"
    for memory_id, user, text in (("m1", "alice", "Gardening on Sunday"),
                                  ("m2", "bob", "Gardening with bob")):
        conn.execute(
            "INSERT INTO memories (id, user_id, text, priority, created_at, updated_at, "
            "embedding, embedding_model, occurred_at) VALUES (?, ?, ?, 5, ?, ?, x'00', 'e:1', ?)",
            (memory_id, user, text, at, at, at))
    conn.close()
    legacy = LexicalKey().user("alice")
    assert any(term.startswith(legacy) for term in _postings(path))
    store = _store(tmp_path)
    found = run(store.keyword_search("alice", "garden sunday", 5, SearchFilters()))
    assert [h[0] for h in found] == ["m1"]
    assert [h[0] for h in run(store.keyword_search("bob", "garden", 5, SearchFilters()))] == [
        "m2"]
    _integrity(store)
    run(store.close())
    terms = _postings(path)
    assert terms and not any(term.startswith(legacy) for term in terms)


def test_filters_time_and_expiry_apply_to_keyword_search(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        old = memory(text="lunch with Dana", agent_id="a1",
                     occurred_at="2023-05-08T12:00:00.000000Z")
        new = memory(text="lunch with Dana again", occurred_at="2024-01-02T12:00:00.000000Z",
                     metadata={"kind": "meal"})
        gone = memory(text="lunch coupon for Dana", expires_at="2024-01-01T00:00:00.000000Z")
        await store.insert_many([old, new, gone])

        async def ids(query: str = "dana lunch", **conditions: object) -> set[str]:
            found = await store.keyword_search("alice", query, 10,
                                               SearchFilters(**conditions))  # type: ignore[arg-type]
            return {hit[0] for hit in found}

        everything = {old.memory.id, new.memory.id, gone.memory.id}
        assert await ids() == everything
        assert await ids(agent_id="a1") == {old.memory.id}
        assert await ids(metadata={"kind": "meal"}) == {new.memory.id}
        assert await ids(occurred_after="2024-01-01T00:00:00.000000Z") == {
            new.memory.id, gone.memory.id}
        assert await ids(occurred_before="2024-01-01T00:00:00.000000Z") == {old.memory.id}
        assert await ids(live_at="2024-06-01T00:00:00.000000Z") == {old.memory.id, new.memory.id}
        assert await ids(live_at="2023-12-31T00:00:00.000000Z") == everything
        # The date is indexed too: "in May 2023" finds the May memory first.
        found = await store.keyword_search("alice", "Dana in May 2023", 10, SearchFilters())
        assert found[0][0] == old.memory.id
        text_only = await store.keyword_search("alice", "May 2023", 10, SearchFilters(),
                                               date_weight=0.0)
        assert text_only == []
        await store.close()

    run(scenario())


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_are_never_fts_syntax(tmp_path: Path, query: str) -> None:
    """A hostile query searches for its plain words, as any query does: no error, the memory
    found exactly when a query word is one of its words, never another user's memory."""
    text = 'body: x AND "quoted" NEAR(a b) x* ^start'

    async def scenario() -> tuple[list[tuple[str, float]], str, str]:
        store = await opened(tmp_path / "m.db")
        mine, other = memory(text=text), memory(user="bob", text=text)
        await store.insert_many([mine, other])
        found = await store.keyword_search("alice", query, 10, SearchFilters())
        await store.close()
        return found, mine.memory.id, mine.memory.occurred_at

    found, mine, occurred_at = run(scenario())
    words = set(query_terms(query))
    matches = words & (set(terms(text)) | set(date_terms(occurred_at)))
    assert [memory_id for memory_id, _ in found] == ([mine] if matches else [])
    assert all(score > 0 for _, score in found)


def test_migration_backfills_an_existing_database(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for version, script in enumerate(MIGRATIONS[:2], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    at = "2023-05-08T12:00:00.000000Z"
    conn.execute(
        "INSERT INTO memories (id, user_id, text, priority, created_at, updated_at, embedding, "
        "embedding_model) VALUES ('m1', 'alice', 'Gardening on Sunday', 5, ?, ?, x'00', 'e:1')",
        (at, at),
    )
    conn.close()

    async def scenario() -> None:
        store = await opened(path)
        stored = await store.get("m1")
        assert stored is not None and stored.occurred_at == at and stored.expires_at is None
        found = await store.keyword_search("alice", "garden", 5, SearchFilters())
        assert [hit[0] for hit in found] == ["m1"]
        await store.close()

    run(scenario())


def _integrity(store: SQLiteStore) -> None:
    for table in ("lexical_index", "archive_lexical_index"):
        run(store.run(lambda t=table: store.conn.execute(
            f"INSERT INTO {t} ({t}, rank) VALUES ('integrity-check', 0)")))


def test_a_messages_speaker_and_context_are_searchable_the_context_weighs_less(
    tmp_path: Path,
) -> None:
    """A reply is found by its speaker's name and by a topic only its neighbours name, below
    a memory that names the topic itself; edits and deletes keep the index whole."""
    store = _store(tmp_path)
    reply = replace(memory(text="Yes, it was amazing!", speaker="Melanie"),
                    context="Caroline: Did you finish the pottery class?")
    named = memory(text="The pottery class starts in June")
    plain = memory(text="Yes, it was amazing!")
    run(store.insert_many([reply, named, plain]))
    found = run(store.keyword_search("alice", "pottery class", 10, SearchFilters()))
    assert [hit[0] for hit in found] == [named.memory.id, reply.memory.id]
    found = run(store.keyword_search("alice", "what did Melanie say", 10, SearchFilters()))
    assert [hit[0] for hit in found] == [reply.memory.id]
    off = run(store.keyword_search("alice", "pottery", 10, SearchFilters(), context_weight=0))
    assert [hit[0] for hit in off] == [named.memory.id]
    _integrity(store)

    before = run(store.get(reply.memory.id))
    assert before is not None and before.text == "Yes, it was amazing!"  # stored as said
    after = replace(before, text="Yes, it was fun", updated_at=utc_now())
    assert run(store.update(after, before))
    found = run(store.keyword_search("alice", "pottery", 10, SearchFilters()))
    assert reply.memory.id in {hit[0] for hit in found}  # the context stays with an edit
    _integrity(store)
    run(store.delete(reply.memory.id, utc_now()))
    found = run(store.keyword_search("alice", "Melanie pottery", 10, SearchFilters()))
    assert [hit[0] for hit in found] == [named.memory.id]
    _integrity(store)
    run(store.close())


def test_migration_7_indexes_speakers_and_keeps_existing_rows(tmp_path: Path) -> None:
    """A store from before conversation context (schema 6) keeps every memory searchable,
    now with its speaker's name."""
    path = tmp_path / "m.db"
    conn = sqlite3.connect(path, isolation_level=None)
    functions.install(conn)
    for version, script in enumerate(MIGRATIONS[:6], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;")
    at = "2023-05-08T12:00:00.000000Z"
    conn.execute(
        "INSERT INTO memories (id, user_id, text, priority, created_at, updated_at, embedding, "
        "embedding_model, occurred_at, speaker) VALUES ('m1', 'alice', 'Gardening on Sunday',"
        " 5, ?, ?, x'00', 'e:1', ?, 'Jonas')", (at, at, at))
    conn.close()
    store = _store(tmp_path)
    assert [h[0] for h in run(store.keyword_search("alice", "garden", 5, SearchFilters()))] == [
        "m1"]
    assert [h[0] for h in run(store.keyword_search("alice", "Jonas", 5, SearchFilters()))] == [
        "m1"]
    _integrity(store)
    run(store.close())


WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
USERS = ["alice", "bob", "carol"]


def test_index_matches_the_live_memories_under_random_writes(tmp_path: Path) -> None:
    """Add, batch, failed batch, update, delete, delete-all and a re-embedding switch in a
    random order; after each, every user's keyword search sees exactly the live memories."""
    rng = random.Random(7)

    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        await store.set_active_version("embedder", "1")
        model: dict[str, tuple[str, str]] = {}  # id -> (user, text)
        live: dict[str, object] = {}  # id -> Memory, for updates
        label = "embedder:1"  # the active space: the store refuses vectors of another

        def text() -> str:
            return " ".join(rng.sample(WORDS, 3))

        async def check() -> None:
            for user in USERS:
                for word in WORDS:
                    found = await store.keyword_search(user, word, 1000, SearchFilters())
                    expected = {i for i, (u, t) in model.items() if u == user and word in t}
                    assert {hit[0] for hit in found} == expected, (user, word)
            await store.run(lambda: store.conn.execute(
                "INSERT INTO lexical_index (lexical_index, rank) VALUES ('integrity-check', 0)"))
            docs = await store.run(lambda: store.conn.execute(
                "SELECT count(*) FROM lexical_docs").fetchone()[0])
            assert docs == len(model)

        for _ in range(60):
            op = rng.choice(["add", "batch", "failed", "update", "when", "delete", "drop",
                             "switch"])
            if op in ("add", "batch"):
                items = [memory(user=rng.choice(USERS), text=text(), embedding_model=label)
                         for _ in range(1 if op == "add" else rng.randint(2, 6))]
                await store.insert_many(items)
                for item in items:
                    model[item.memory.id] = (item.memory.user_id, item.memory.text)
                    live[item.memory.id] = item.memory
            elif op == "failed" and live:
                duplicate = live[rng.choice(sorted(live))]
                fresh = memory(user=rng.choice(USERS), text=text(), embedding_model=label)
                with pytest.raises(RowConflict):
                    await store.insert_many([fresh, replace(fresh, memory=duplicate)])  # type: ignore[arg-type]
            elif op in ("update", "when") and live:
                key = rng.choice(sorted(live))
                before = live[key]
                changes = ({"text": text()} if op == "update"
                           else {"occurred_at": f"2022-02-0{rng.randint(1, 9)}T00:00:00.000000Z"})
                after = replace(before, updated_at=utc_now(), **changes)  # type: ignore[type-var]
                assert await store.update(after, before)  # type: ignore[arg-type]
                live[key] = after
                model[key] = (after.user_id, after.text)  # type: ignore[attr-defined]
            elif op == "delete" and live:
                key = rng.choice(sorted(live))
                await store.delete(key, utc_now())
                del live[key], model[key]
            elif op == "drop":
                user = rng.choice(USERS)
                await store.delete_user(user, utc_now())
                for key in [k for k, (u, _) in model.items() if u == user]:
                    del live[key], model[key]
            elif op == "switch":
                state = await store.model_state("embedder")
                assert state is not None
                target = str(int(state.active) + 1)
                await store.begin_migration("embedder", target, utc_now())
                batch = await store.migration_pending("", 10_000)
                await store.put_shadow_batch("embedder", f"embedder:{target}", batch,
                                                np.zeros((len(batch), 4)))
                assert await store.switch_version("embedder", target, f"embedder:{target}")
                label = f"embedder:{target}"
                live = {key: await store.get(key) for key in live}  # relabelled by the switch
            await check()
        await store.close()

    run(scenario())


def test_a_filter_that_drops_the_best_matches_still_finds_the_filtered_ones(
        tmp_path: Path) -> None:
    """Keyword search ranks in FTS5 first and filters the best rows after; when a filter keeps
    none of them, it ranks the filtered matches instead of answering short."""
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        best = [memory(text=f"coffee coffee {i}") for i in range(200)]
        # Long texts rank below every short one for "coffee"; only these carry the agent.
        agents = [memory(text="coffee " + "and a long story about the morning " * 20 + str(i),
                         agent_id="barista") for i in range(3)]
        await store.insert_many([*best, *agents])
        found = await store.keyword_search("alice", "coffee", 2,
                                           SearchFilters(agent_id="barista"))
        assert len(found) == 2 and {h[0] for h in found} <= {a.memory.id for a in agents}
        unfiltered = await store.keyword_search("alice", "coffee", 5, SearchFilters())
        assert {h[0] for h in unfiltered} <= {b.memory.id for b in best}
        assert [h[1] for h in unfiltered] == sorted((h[1] for h in unfiltered), reverse=True)
        await store.close()

    run(scenario())


def test_lexical_index_off_then_on_rebuilds_live_and_archive_indexes(tmp_path: Path) -> None:
    """MEMORY_LEXICAL_INDEX=false drops the triggers and empties the indexes; on again, both
    are rebuilt from the memories, archived rows into the archive index."""
    path = tmp_path / "m.db"
    live, gone = memory(text="Sailing in Bergen"), memory(text="Sailing in Oslo")

    async def reopen(on: bool) -> SQLiteStore:
        store = SQLiteStore(path, lexical_index=on)
        await store.open()
        return store

    store = run(reopen(True))
    run(store.insert_many([live, gone]))
    run(store.run(lambda: store.conn.execute(
        "UPDATE memories SET archived_at = ? WHERE id = ?", (utc_now(), gone.memory.id))))
    run(store.close())
    store = run(reopen(False))
    late = memory(text="Sailing in Tromso")
    run(store.insert_many([late]))  # no trigger: not indexed
    assert run(store.keyword_search("alice", "sailing", 10, SearchFilters())) == []
    run(store.close())
    store = run(reopen(True))
    found = run(store.keyword_search("alice", "sailing", 10, SearchFilters()))
    assert {hit[0] for hit in found} == {live.memory.id, late.memory.id}
    archived = run(store.keyword_search("alice", "sailing", 10, SearchFilters(), archived=True))
    assert [hit[0] for hit in archived] == [gone.memory.id]
    _integrity(store)
    run(store.close())
