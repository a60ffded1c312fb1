"""The store contract: every operation of ``gateway.store.base.Store`` (and ``KeyTable``),
checked against each backend through the protocol only.

A new backend joins by one entry in ``BACKENDS`` (and ``KEY_TABLES``): a factory from a
temporary directory to an unopened store. Nothing here reaches below the protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import memory, run

from gateway.domain.model import Memory, SearchFilters, StoredImage, StoredMemory
from gateway.domain.normalise import text_key
from gateway.memory.ids import uuid7
from gateway.store.base import KeyTable, Store
from gateway.store.postgres.keys import PostgresKeyTable
from gateway.store.postgres.store import PostgresStore
from gateway.store.sqlite.keys import SQLiteKeyTable
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.types import (
    Change,
    ExactQuery,
    Fold,
    KeyRow,
    PruneBefore,
    Pruned,
    RowConflict,
    StaleVersion,
    StaleWrite,
    UserRange,
    WritePlan,
)

# A factory gets a temporary directory and the request (a server-backed one asks it for a
# fixture: ``postgres_url`` is a fresh database on the session's PostgreSQL server).
BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Store]] = {
    "sqlite": lambda tmp, _: SQLiteStore(tmp / "memories.sqlite3"),
    "postgres": lambda _, request: PostgresStore(request.getfixturevalue("postgres_url")),
}
KEY_TABLES: dict[str, Callable[[Path, pytest.FixtureRequest], KeyTable]] = {
    "sqlite": lambda tmp, _: SQLiteKeyTable(tmp / "keys.sqlite3"),
    "postgres": lambda _, request: PostgresKeyTable(request.getfixturevalue("postgres_url")),
}
T0, T1, T2, T3 = ("2024-01-01T00:00:00.000000Z", "2024-01-02T00:00:00.000000Z",
                  "2024-01-03T00:00:00.000000Z", "2024-01-04T00:00:00.000000Z")
ANY = SearchFilters()


@pytest.fixture(params=sorted(BACKENDS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = BACKENDS[request.param](tmp_path, request)
    run(opened.open())
    assert opened.is_open
    yield opened
    run(opened.close())


@pytest.fixture(params=sorted(KEY_TABLES))
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyTable]:
    table = KEY_TABLES[request.param](tmp_path, request)
    table.open()
    yield table
    table.close()


def put(store: Store, *items: StoredMemory) -> list[Memory]:
    run(store.insert_many(list(items)))
    return [item.memory for item in items]


def vector(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


# -- memories -------------------------------------------------------------------------------
def test_insert_get_and_get_many(store: Store) -> None:
    a, b = put(store, memory(text="one", metadata={"k": 1}), memory(text="two", priority=9))
    assert run(store.get(a.id)) == a
    assert run(store.get("missing")) is None
    assert run(store.get_many([a.id, "missing", b.id])) == {a.id: a, b.id: b}
    assert run(store.count()) == 2
    assert run(store.existing_ids([a.id, "missing"])) == {a.id}


def test_insert_many_is_all_or_nothing(store: Store) -> None:
    (first,) = put(store, memory())
    with pytest.raises(RowConflict):  # every backend says it the same way
        run(store.insert_many([memory(text="new"), memory(id=first.id)]))
    assert run(store.count()) == 1
    assert run(store.get(first.id)) == first


def test_list_page_orders_and_pages_by_keyset(store: Store) -> None:
    made = put(store, *(memory(occurred_at=when) for when in (T2, T0, T3, T1)))
    by_id = [m.id for m in made]

    def walk(**options: object) -> list[str]:
        seen: list[str] = []
        last: Memory | None = None
        while True:
            page = run(store.list_page("alice", 3, last.id if last else None,
                                       after_occurred=last.occurred_at if last else None,
                                       **options))  # type: ignore[arg-type]
            seen += [m.id for m in page]
            if len(page) < 3:
                return seen
            last = page[-1]

    assert walk() == by_id
    assert walk(descending=True) == by_id[::-1]
    by_occurrence = [m.id for m in sorted(made, key=lambda m: m.occurred_at)]
    assert walk(order_by="occurred_at") == by_occurrence
    assert walk(order_by="occurred_at", descending=True) == by_occurrence[::-1]
    assert run(store.list_page("bob", 10, None)) == []


def test_list_page_leaves_out_expired_and_archived(store: Store) -> None:
    live, expired, archived = put(
        store, memory(), memory(expires_at=T1), memory(archived_at=T0))
    assert [m.id for m in run(store.list_page("alice", 10, None, live_at=T2))] == [live.id]
    assert {m.id for m in run(store.list_page("alice", 10, None))} == {live.id, expired.id}
    every = run(store.list_page("alice", 10, None, archived=True))
    assert {m.id for m in every} == {live.id, expired.id, archived.id}


def test_update_checks_the_previous_version(store: Store) -> None:
    (item,) = put(store, memory(text="before"))
    after = replace(item, text="after", updated_at=T3)
    assert run(store.update(after, item))
    assert run(store.get(item.id)) == after
    assert not run(store.update(replace(after, text="stale"), item))  # previous is gone
    assert run(store.get(item.id)) == after
    moved = StoredMemory(replace(after, updated_at="2024-02-01T00:00:00.000000Z"),
                         vector(1, 0, 0, 0))
    assert run(store.update(moved, after))
    label, stored = run(store.embeddings([item.id]))[item.id]
    assert label == item.embedding_model
    np.testing.assert_allclose(stored, vector(1, 0, 0, 0))
    assert not run(store.update(after, replace(item, id="missing")))


def test_history_records_every_event_in_order(store: Store) -> None:
    (item,) = put(store, memory(text="first", metadata={"a": 1}))
    run(store.update(replace(item, text="second", updated_at=T3), item))
    gone = run(store.delete(item.id, "2024-02-01T00:00:00.000000Z"))
    assert gone is not None and gone[0].text == "second" and gone[1] == []
    events = run(store.history(item.id))
    assert [(e.event, e.old_text, e.new_text) for e in events] == [
        ("ADD", None, "first"), ("UPDATE", "first", "second"), ("DELETE", "second", None)]
    assert events[0].payload["metadata"] == {"a": 1}
    assert {e.user_id for e in events} == {"alice"}
    assert run(store.get(item.id)) is None
    assert run(store.delete(item.id, T3)) is None


def test_delete_user_removes_only_that_user(store: Store) -> None:
    a1, a2, b1 = put(store, memory(user="alice"), memory(user="alice"), memory(user="bob"))
    assert sorted(run(store.delete_user("alice", T3))) == sorted([a1.id, a2.id])
    assert run(store.get_many([a1.id, a2.id, b1.id])) == {b1.id: b1}
    assert [e.event for e in run(store.history(a1.id))] == ["ADD", "DELETE"]
    assert run(store.delete_user("nobody", T3)) == []


def test_erase_removes_the_memory_its_history_and_the_events_naming_it(store: Store) -> None:
    item, other = put(store, memory(text="erase me"), memory(text="keep me"))
    run(store.update(replace(item, text="erase me too", updated_at=T3), item))
    run(store.create_event("e1", "alice", {"items": ["erase me"]}, T0))
    run(store.save_event("e1", "SUCCEEDED", T1, result={"memory": {"id": item.id}}))
    run(store.create_event("e2", "alice", {"items": ["keep me"]}, T0))
    erased = run(store.erase(item.id, T3))
    assert erased is not None and erased.user_id == "alice"
    assert erased.memory is not None and erased.memory.text == "erase me too"
    assert (erased.history_events, erased.ingest_events, erased.restored) == (2, 1, [])
    assert run(store.get(item.id)) is None and run(store.history(item.id)) == []
    assert run(store.get_event("e1")) is None and run(store.get_event("e2")) is not None
    assert run(store.keyword_search("alice", "erase", 5, ANY)) == []
    assert run(store.get(other.id)) == other and len(run(store.history(other.id))) == 1
    assert run(store.erase(item.id, T3)) is None  # nothing left of it


def test_erase_of_a_deleted_memory_takes_its_history(store: Store) -> None:
    (item,) = put(store, memory(text="said once"))
    run(store.delete(item.id, T1))
    erased = run(store.erase(item.id, T2))
    assert erased is not None and erased.memory is None and erased.history_events == 2
    assert run(store.history(item.id)) == []


def test_erasing_a_summary_restores_its_sources_as_delete_does(store: Store) -> None:
    sources = put(store, memory(text="a", priority=1), memory(text="b", priority=1))
    summary = _fold(store, sources)
    erased = run(store.erase(summary.id, T3))
    assert erased is not None
    assert {s.memory.id for s in erased.restored} == {s.id for s in sources}
    assert run(store.history(summary.id)) == []


def test_erase_user_removes_every_trace_of_that_user_only(store: Store) -> None:
    a1, a2, b1 = put(store, memory(user="alice", text="alpha"), memory(user="alice"),
                     memory(user="bob", text="alpha"))
    run(store.delete(a2.id, T1))
    sources = put(store, memory(user="alice", priority=1), memory(user="alice", priority=1))
    _fold(store, sources)  # archived rows go too
    run(store.create_event("e1", "alice", {"items": []}, T0))
    run(store.create_event("e2", "bob", {"items": [{"user_id": "alice"}]}, T0))
    run(store.create_event("e3", "bob", {"items": [{"user_id": "bob"}]}, T0))
    erased = run(store.erase_user("alice"))
    assert a1.id in erased and a2.id not in erased and len(erased) == 4
    assert run(store.list_page("alice", 10, None, archived=True)) == []
    for memory_id in (a1.id, a2.id, *(s.id for s in sources)):
        assert run(store.history(memory_id)) == []
    assert [run(store.get_event(e)) is None for e in ("e1", "e2", "e3")] == [True, True, False]
    assert run(store.keyword_search("alice", "alpha", 5, ANY)) == []
    assert [h[0] for h in run(store.keyword_search("bob", "alpha", 5, ANY))] == [b1.id]
    assert len(run(store.history(b1.id))) == 1
    assert run(store.erase_user("nobody")) == []


# -- image memories ------------------------------------------------------------------------
def picture(*values: float, model: str = "clip:1") -> StoredImage:
    return StoredImage(b"\x89PNG fake bytes", "image/png", 3, 2, model, vector(*values))


def image_memory(user: str = "alice", *values: float, model: str = "clip:1", text: str = "",
                 **fields: object) -> StoredMemory:
    item = memory(user=user, text=text, modality="image", **fields)
    return replace(item, image=picture(*(values or (1, 0)), model=model))


def test_image_memories_keep_their_picture_and_modality(store: Store) -> None:
    text, image = put(store, memory(text="words"), image_memory())
    assert run(store.get(image.id)).modality == "image"
    assert run(store.get(text.id)).modality == "text"
    stored = run(store.image(image.id))
    assert stored is not None and stored.data == b"\x89PNG fake bytes"
    assert (stored.mime, stored.width, stored.height, stored.model) == ("image/png", 3, 2,
                                                                         "clip:1")
    np.testing.assert_allclose(stored.vector, vector(1, 0))
    assert run(store.image(text.id)) is None and run(store.image("missing")) is None


def test_image_vectors_are_per_user_space_filter_and_liveness(store: Store) -> None:
    a, b = put(store, image_memory("alice", 1, 0), image_memory("alice", 0, 1, agent_id="x"))
    put(store, image_memory("bob", 1, 1), image_memory("alice", 1, 1, model="clip:2"),
        memory(user="alice"), image_memory("alice", 1, 0, expires_at=T0))
    ids, matrix = run(store.image_vectors("alice", "clip:1", SearchFilters(live_at=T1)))
    assert ids == sorted([a.id, b.id]) and matrix.shape == (2, 2)
    np.testing.assert_allclose(matrix[ids.index(b.id)], vector(0, 1))
    only_x = run(store.image_vectors("alice", "clip:1", SearchFilters(agent_id="x")))
    assert only_x[0] == [b.id]
    ids, matrix = run(store.image_vectors("carol", "clip:1", ANY))
    assert ids == [] and matrix.shape[0] == 0


def test_delete_and_erase_take_the_picture_along(store: Store) -> None:
    one, two, three = put(store, image_memory(), image_memory(), image_memory("bob"))
    run(store.delete(one.id, T1))
    run(store.erase(two.id, T1))
    run(store.erase_user("bob"))
    for item in (one, two, three):
        assert run(store.image(item.id)) is None
    assert run(store.image_vectors("alice", "clip:1", ANY))[0] == []


def test_a_clip_migration_moves_every_picture_to_the_target_space_at_once(
        store: Store) -> None:
    run(store.set_active_version("clip", "1"))
    a, b, gone = put(store, image_memory("alice", 1, 0), image_memory("bob", 0, 1),
                     image_memory("alice", 1, 1))
    put(store, memory(text="words"))  # text memories have no picture to re-embed
    assert run(store.begin_image_migration("clip", "2", T1))
    assert not run(store.begin_image_migration("clip", "3", T1))  # one at a time
    first = run(store.image_migration_pending("", 2))
    assert [(p.id, p.data) for p in first] == [(a.id, b"\x89PNG fake bytes"),
                                               (b.id, b"\x89PNG fake bytes")]
    assert run(store.put_image_shadow_batch("clip", "clip:2", [p.id for p in first],
                                            np.stack([vector(0, 0, 1)] * 2))) == 2
    state = run(store.model_state("clip"))
    assert state is not None and (state.active, state.target, state.cursor) == ("1", "2", b.id)
    run(store.delete(gone.id, T2))  # its picture leaves; nothing waits for it
    late = image_memory("alice", 0, 1)  # added during the migration, in the active space
    put(store, late)
    assert run(store.image_migration_progress()) == (2, 3)
    assert not run(store.switch_image_version("clip", "2", "clip:2"))  # the late one lacks it
    # Searches meanwhile read the active space only.
    assert run(store.image_vectors("alice", "clip:2", ANY))[0] == []
    assert len(run(store.image_vectors("alice", "clip:1", ANY))[0]) == 2
    rest = run(store.image_migration_pending(b.id, 10))
    assert [p.id for p in rest] == [late.memory.id]  # past the cursor: the one without
    run(store.put_image_shadow_batch("clip", "clip:2", [late.memory.id],
                                     np.stack([vector(0, 1, 1)])))
    assert run(store.image_migration_pending(late.memory.id, 10)) == []
    assert run(store.switch_image_version("clip", "2", "clip:2"))
    state = run(store.model_state("clip"))
    assert state is not None and (state.active, state.target, state.cursor) == ("2", None, "")
    assert run(store.image_vectors("alice", "clip:1", ANY))[0] == []
    ids, matrix = run(store.image_vectors("alice", "clip:2", ANY))
    assert sorted(ids) == sorted([a.id, late.memory.id]) and matrix.shape == (2, 3)
    np.testing.assert_allclose(matrix[ids.index(late.memory.id)], vector(0, 1, 1))
    assert run(store.image(b.id)).model == "clip:2"  # type: ignore[union-attr]
    assert run(store.image_migration_progress()) == (0, 3)


def test_abandoning_a_clip_migration_keeps_the_active_space(store: Store) -> None:
    run(store.set_active_version("clip", "1"))
    run(store.set_active_version("embedder", "1"))
    (a,) = put(store, image_memory())
    run(store.begin_migration("embedder", "2", T1))  # the embedder's own, left alone
    run(store.put_shadow_batch("embedder", "embedder:2", run(store.migration_pending("", 5)),
                               np.stack([vector(1, 0, 0, 0)])))
    run(store.begin_image_migration("clip", "2", T1))
    run(store.put_image_shadow_batch("clip", "clip:2", [a.id], np.stack([vector(0, 1)])))
    run(store.abandon_image_migration("clip"))
    state = run(store.model_state("clip"))
    assert state is not None and (state.active, state.target, state.cursor) == ("1", None, "")
    assert run(store.image_migration_progress()) == (0, 1)
    assert run(store.image(a.id)).model == "clip:1"  # type: ignore[union-attr]
    assert run(store.migration_progress()) == (1, 1)
    assert run(store.model_state("embedder")).target == "2"  # type: ignore[union-attr]


def test_filter_ids_applies_every_condition(store: Store) -> None:
    a, b, c, _ = put(
        store, memory(agent_id="x", metadata={"tag": "red", "n": 2}, created_at=T0),
        memory(agent_id="x", metadata={"tag": "blue", "flag": True}, created_at=T2),
        memory(run_id="r", metadata={"tag": None}, created_at=T1, occurred_at=T1),
        memory(user="bob", agent_id="x"))
    assert run(store.filter_ids("alice", SearchFilters(agent_id="x"))) == {a.id, b.id}
    assert run(store.filter_ids("alice", SearchFilters(metadata={"tag": "red"}))) == {a.id}
    assert run(store.filter_ids("alice", SearchFilters(metadata={"n": 2}))) == {a.id}
    assert run(store.filter_ids("alice", SearchFilters(metadata={"flag": True}))) == {b.id}
    assert run(store.filter_ids("alice", SearchFilters(metadata={"tag": None}))) == {c.id}
    window = SearchFilters(created_after=T1, created_before=T2)
    assert run(store.filter_ids("alice", window)) == {c.id}
    assert run(store.filter_ids("alice", SearchFilters(run_id="r", occurred_before=T2))) \
        == {c.id}


def test_expired_ids_finds_live_expired_rows_up_to_the_limit(store: Store) -> None:
    old, older, _, _ = put(store, memory(expires_at=T1), memory(expires_at=T0),
                           memory(expires_at=T3), memory(expires_at=T0, archived_at=T0))
    assert run(store.expired_ids("alice", T2, 10)) == {old.id, older.id}
    assert len(run(store.expired_ids("alice", T2, 1))) == 1
    assert run(store.expired_ids("bob", T2, 10)) == set()


def test_keyword_search_ranks_scopes_and_filters(store: Store) -> None:
    best, other, _, _ = put(
        store, memory(text="coffee coffee in the morning", agent_id="x"),
        memory(text="coffee with milk"), memory(text="tea at noon"),
        memory(user="bob", text="coffee"))
    found = run(store.keyword_search("alice", "Coffee!", 10, ANY))
    assert [hit[0] for hit in found] == [best.id, other.id]
    assert all(score > 0 for _, score in found) and found[0][1] >= found[1][1]
    assert [h[0] for h in run(store.keyword_search("alice", "coffee", 1, ANY))] == [best.id]
    scoped = run(store.keyword_search("alice", "coffee", 10, SearchFilters(agent_id="x")))
    assert [hit[0] for hit in scoped] == [best.id]
    assert run(store.keyword_search("alice", "the and of", 10, ANY)) == []
    assert run(store.keyword_search("carol", "coffee", 10, ANY)) == []


def test_keyword_memories_are_the_keyword_hits_with_their_rows(store: Store) -> None:
    """The same hits, scores and order as ``keyword_search``, each with its stored row."""
    put(store, memory(text="coffee coffee in the morning", agent_id="x"),
        memory(text="coffee with milk", metadata={"k": 1}), memory(text="tea and coffee"),
        memory(text="an archived coffee", archived_at=T0), memory(user="bob", text="coffee"))
    cases = [("coffee", 10, ANY, False), ("coffee milk", 2, ANY, False),
             ("coffee", 10, SearchFilters(agent_id="x"), False), ("coffee", 10, ANY, True),
             ("the and of", 10, ANY, False)]
    for query, k, filters, archived in cases:
        hits = run(store.keyword_search("alice", query, k, filters, archived=archived))
        found = run(store.keyword_memories("alice", query, k, filters, archived=archived))
        assert [(m.id, score) for m, score in found] == hits, (query, filters, archived)
        assert [m for m, _ in found] == [run(store.get(i)) for i, _ in hits]
    assert len(run(store.keyword_memories("alice", "coffee", 10, ANY))) == 3
    assert run(store.keyword_memories("alice", "coffee", 10, ANY, date_weight=0.5))


def test_keyword_search_reads_dates_context_and_the_archive(store: Store) -> None:
    dated, archived = put(store, memory(text="a walk", occurred_at="2023-05-08T12:00:00Z"),
                          memory(text="an archived walk", archived_at=T0))
    run(store.insert_many([replace(memory(text="yes"), context="about the harbour")]))
    assert [h[0] for h in run(store.keyword_search("alice", "May 2023", 10, ANY))] == [dated.id]
    assert run(store.keyword_search("alice", "May 2023", 10, ANY, date_weight=0)) == []
    assert len(run(store.keyword_search("alice", "harbour", 10, ANY))) == 1
    assert run(store.keyword_search("alice", "harbour", 10, ANY, context_weight=0)) == []
    assert [h[0] for h in run(store.keyword_search("alice", "walk", 10, ANY, archived=True))] \
        == [archived.id]


def test_vectors_leave_out_the_archived(store: Store) -> None:
    a, b, archived, c = put(store, memory(), memory(), memory(archived_at=T0),
                            memory(user="bob"))
    ids, matrix = run(store.user_vectors("alice"))
    assert ids == [a.id, b.id] and matrix.shape == (2, 4)
    empty_ids, empty = run(store.user_vectors("nobody"))
    assert empty_ids == [] and len(empty) == 0
    every = run(store.vectors(batch=1))
    assert sorted((user, i) for user, i, _ in every) == sorted(
        [("alice", a.id), ("alice", b.id), ("bob", c.id)])
    assert set(run(store.embeddings([archived.id, "missing"]))) == {archived.id}


# -- ingest plans and exact duplicates ------------------------------------------------------
def test_exact_matches_use_the_text_key_scope_and_liveness(store: Store) -> None:
    first, _, _, _ = put(store, memory(text="Meeting  on Monday."),
                         memory(text="meeting on monday.", agent_id="x"),
                         memory(text="Gone", expires_at=T0), memory(text="Kept", archived_at=T0))

    def query(text: str, agent: str | None = None) -> ExactQuery:
        return ExactQuery("alice", agent, None, text_key(text))

    found = run(store.exact_matches([query("MEETING ON MONDAY."), query("gone"),
                                     query("kept"), query("other")], T2))
    assert found == [first, None, None, None]
    agent = run(store.exact_matches([query("meeting on monday.", "x")], T2))[0]
    assert agent is not None and agent.agent_id == "x"
    put(store, image_memory(text="A caption"))
    assert run(store.exact_matches([query("a caption")], T2)) == [None]  # a picture is no text


def test_apply_commits_a_plan_or_nothing(store: Store) -> None:
    kept, changed, deleted = put(store, memory(text="kept"), memory(text="old"),
                                 memory(text="doomed"))
    new = memory(text="new")
    plan = WritePlan(inserts=[new], changes=[Change(changed, replace(changed, text="newer",
                                                                     updated_at=T3))],
                     deletes=[deleted], payload={"event": "e1"}, at=T3)
    run(store.apply(plan))
    assert run(store.get(new.memory.id)) == new.memory
    assert run(store.get(changed.id)).text == "newer"  # type: ignore[union-attr]
    assert run(store.get(deleted.id)) is None
    assert run(store.history(deleted.id))[-1].payload == {"event": "e1"}
    stale = WritePlan(inserts=[memory(text="never")],
                      changes=[Change(changed, replace(changed, text="lost", updated_at=T3))])
    with pytest.raises(StaleWrite):
        run(store.apply(stale))
    assert run(store.count()) == 3 and run(store.get(changed.id)).text == "newer"  # type: ignore[union-attr]
    with pytest.raises(StaleWrite):
        run(store.apply(WritePlan(deletes=[replace(kept, updated_at=T0)])))
    assert run(store.get(kept.id)) == kept


# -- the archive ----------------------------------------------------------------------------
def _fold(store: Store, sources: list[Memory]) -> Memory:
    summary = memory(text="summary", sources=tuple(s.id for s in sources))
    run(store.fold([Fold(summary, sources, payload={"reason": "compress"})], T2))
    return summary.memory


def test_fold_archives_sources_and_deleting_the_summary_restores_them(store: Store) -> None:
    sources = put(store, memory(text="a", priority=1), memory(text="b", priority=1))
    high = put(store, memory(text="c", priority=9))[0]
    assert [s.memory.id for s in run(store.compressible("alice", 5, T2))] == \
        [s.id for s in sources]
    summary = _fold(store, sources)
    listed = {m.id for m in run(store.list_page("alice", 10, None))}
    assert listed == {high.id, summary.id}
    archived = run(store.get(sources[0].id))
    assert archived is not None and archived.archived_at == T2
    assert archived.summary_id == summary.id
    assert {r[0] for r in run(store.archived_vectors("alice", ANY))} == {s.id for s in sources}
    assert summary.id not in {s.memory.id for s in run(store.compressible("alice", 9, T2))}
    page = run(store.compressible("alice", 9, T2, after=sources[0].id, limit=1))
    assert [s.memory.id for s in page] == [sources[1].id]
    with pytest.raises(StaleWrite):  # already archived: the second fold writes nothing
        _fold(store, sources)
    assert run(store.count()) == 4
    gone = run(store.delete(summary.id, T3))
    assert gone is not None
    restored = {s.memory.id: s.memory for s in gone[1]}
    assert set(restored) == {s.id for s in sources}
    assert all(m.archived_at is None and m.summary_id is None for m in restored.values())
    assert len(run(store.list_page("alice", 10, None))) == 3


def test_delete_expired_takes_archived_rows_and_restores_sources(store: Store) -> None:
    sources = put(store, memory(text="a"), memory(text="b", expires_at=T1))
    summary = memory(text="s", sources=tuple(s.id for s in sources), expires_at=T1)
    run(store.fold([Fold(summary, sources)], T0))
    expired, restored = run(store.delete_expired("alice", T2))
    assert {m.id for m in expired} == {summary.memory.id, sources[1].id}
    assert [s.memory.id for s in restored] == [sources[0].id]
    assert run(store.history(sources[1].id))[-1].payload.get("reason") == "expired"


# -- shadow vectors and model versions ------------------------------------------------------
def test_migration_fills_shadow_vectors_then_switches(store: Store) -> None:
    assert run(store.model_state("embedder")) is None
    run(store.set_active_version("embedder", "1"))
    a, b, archived = put(store, memory(text="one", speaker="Ann"), memory(text="two"),
                         memory(text="three", archived_at=T0))
    run(store.begin_migration("embedder", "2", T1))
    state = run(store.model_state("embedder"))
    assert state is not None and (state.active, state.target, state.cursor) == ("1", "2", "")
    batch = run(store.migration_pending("", 10))
    assert [(p.id, p.text, p.archived) for p in batch] == [
        (a.id, "Ann: one", False), (b.id, "two", False), (archived.id, "three", True)]
    run(store.update(replace(b, text="two!", updated_at=T3), b,
                     shadow=("embedder:2", vector(0, 1, 0, 0))))
    written = run(store.put_shadow_batch("embedder", "embedder:2", batch,
                                         np.stack([vector(1, 0, 0, 1)] * 3)))
    assert [p.id for p in written] == [a.id, archived.id]  # b changed since it was read
    assert run(store.model_state("embedder")).cursor == archived.id  # type: ignore[union-attr]
    late = memory(text="late")
    run(store.insert_many([late], shadows=[("embedder:2", vector(0, 0, 1, 0))]))
    assert run(store.migration_progress()) == (4, 4)
    assert {i for _, i, _ in run(store.shadow_vectors())} == {a.id, b.id, late.memory.id}
    assert run(store.switch_version("embedder", "2", "embedder:2"))
    state = run(store.model_state("embedder"))
    assert state is not None and (state.active, state.target) == ("2", None)
    label, moved = run(store.embeddings([b.id]))[b.id]
    assert label == "embedder:2"
    np.testing.assert_allclose(moved, vector(0, 1, 0, 0))
    assert run(store.migration_progress()) == (0, 4)


def test_switch_refuses_while_a_row_lacks_its_vector_and_abandon_rolls_back(
        store: Store) -> None:
    run(store.set_active_version("embedder", "1"))
    put(store, memory(), memory())
    run(store.begin_migration("embedder", "2", T1))
    first = run(store.migration_pending("", 1))
    run(store.put_shadow_batch("embedder", "embedder:2", first, np.stack([vector(1, 1, 1, 1)])))
    assert not run(store.switch_version("embedder", "2", "embedder:2"))
    run(store.abandon_migration("embedder"))
    state = run(store.model_state("embedder"))
    assert state is not None and (state.active, state.target, state.cursor) == ("1", None, "")
    assert run(store.shadow_vectors()) == []


def test_a_vector_outside_the_live_spaces_is_refused_and_nothing_is_written(
        store: Store) -> None:
    """A replica that has not followed a switch made elsewhere still labels its vectors with
    the old version: the store refuses them in the writing transaction (the service then
    follows the switch and writes again)."""
    run(store.set_active_version("embedder", "1"))
    (kept,) = put(store, memory(text="kept"))
    run(store.begin_migration("embedder", "2", T1))
    with pytest.raises(StaleVersion):  # a shadow for a target that is not the migration's
        run(store.insert_many([memory()], shadows=[("embedder:3", vector(1, 0, 0, 0))]))
    run(store.put_shadow_batch("embedder", "embedder:2", run(store.migration_pending("", 10)),
                               np.stack([vector(0, 1, 0, 0)])))
    assert run(store.switch_version("embedder", "2", "embedder:2"))
    seq, count = run(store.last_change()), run(store.count())
    with pytest.raises(StaleVersion):
        run(store.insert_many([memory(text="late", embedding_model="embedder:1")]))
    with pytest.raises(StaleVersion):  # an update with a new vector in the old space
        run(store.update(StoredMemory(replace(kept, text="edited", updated_at=T3,
                                              embedding_model="embedder:1"),
                                      vector(0, 0, 1, 0)), kept))
    switched = run(store.get(kept.id))
    assert switched is not None and switched.embedding_model == "embedder:2"
    with pytest.raises(StaleVersion):  # nor may a metadata edit read before the switch relabel
        run(store.update(replace(kept, metadata={"k": 1}, updated_at=T3), switched))
    with pytest.raises(StaleVersion):  # the plan path (ingest, LLM decisions) too
        run(store.apply(WritePlan(inserts=[memory(text="planned")])))
    with pytest.raises(StaleVersion):  # and a shadow with no migration running
        run(store.insert_many([memory(embedding_model="embedder:2")],
                              shadows=[("embedder:2", vector(1, 0, 0, 0))]))
    assert (run(store.last_change()), run(store.count())) == (seq, count)
    label, moved = run(store.embeddings([kept.id]))[kept.id]
    assert label == "embedder:2"
    np.testing.assert_allclose(moved, vector(0, 1, 0, 0))
    put(store, memory(text="new", embedding_model="embedder:2"))
    assert run(store.update(replace(switched, metadata={"k": 2}, updated_at=T3), switched))
    put(store, memory(text="another model", embedding_model="clip:1"))  # no state: unchecked
    assert run(store.count()) == count + 2


def test_adopt_versions_keeps_recorded_ones(store: Store) -> None:
    run(store.set_active_version("embedder", "3"))
    assert run(store.adopt_versions({"embedder": "1", "reranker": "2"})) == {
        "embedder": "3", "reranker": "2"}


# -- counts ---------------------------------------------------------------------------------
def test_user_counts_census_and_populations(store: Store) -> None:
    put(store, memory(user="a", metadata={"app": "x"}), memory(user="a", agent_id="g"),
        memory(user="b", metadata={"app": "x"}), memory(user="c", archived_at=T0))
    assert run(store.user_counts(["a", "b", "nobody"])) == {"a": 2, "b": 1}
    found = run(store.census((0.5, 1.0)))
    assert (found.users, found.memories, found.per_user) == (3, 4, {0.5: 1.0, 1.0: 2.0})
    groups = {(p.user_id, p.agent_id, p.tag): p.memories for p in run(store.populations("app"))}
    assert groups == {("a", None, "x"): 1, ("a", "g", None): 1, ("b", None, "x"): 1,
                      ("c", None, None): 1}


def test_populations_count_one_tenants_users(store: Store) -> None:
    """Issue 19, finding 5: a tenant's count covers its id prefix (and, for the unprefixed
    default tenant, the ids without the separator), never another tenant's rows."""
    put(store, memory(user="acme\x1fa"), memory(user="acme\x1fb", agent_id="g"),
        memory(user="acmeco\x1fa"), memory(user="acme"), memory(user="plain"))
    acme = {(p.user_id, p.agent_id) for p in run(store.populations("app", "acme\x1f"))}
    assert acme == {("acme\x1fa", None), ("acme\x1fb", "g")}
    default = {p.user_id for p in run(store.populations("app", "", "\x1f"))}
    assert default == {"acme", "plain"}
    assert run(store.populations("app", "nobody\x1f")) == []


# -- ingest events --------------------------------------------------------------------------
def test_events_are_claimed_once_when_due_and_recovered(store: Store) -> None:
    run(store.create_event("e1", "alice", {"items": [1]}, T0))
    run(store.create_event("e2", "alice", {"items": [2]}, T0, next_attempt=T2, attempts=1,
                           error="shed"))
    event = run(store.get_event("e2"))
    assert event is not None and (event.status, event.attempts, event.error) == (
        "PENDING", 1, "shed")
    assert run(store.next_event_due()) == T0
    claimed = run(store.claim_event(T1))
    assert claimed is not None and (claimed.id, claimed.status) == ("e1", "RUNNING")
    assert run(store.claim_event(T1)) is None  # e2 is not due yet
    run(store.save_event("e1", "RUNNING", T1, result={"done": 1}))
    run(store.save_event("e1", "SUCCEEDED", T1, attempts=1))
    done = run(store.get_event("e1"))
    assert done is not None and (done.status, done.result, done.attempts) == (
        "SUCCEEDED", {"done": 1}, 1)
    assert run(store.claim_event(T2)).id == "e2"  # type: ignore[union-attr]
    assert run(store.recover_events(T3)) == 1
    again = run(store.get_event("e2"))
    assert again is not None and (again.status, again.next_attempt) == ("PENDING", T3)
    assert run(store.get_event("missing")) is None


# -- jobs -----------------------------------------------------------------------------------
def test_jobs_are_claimed_under_a_lease_with_a_fencing_token(store: Store) -> None:
    job = run(store.create_job("j1", "merge", None, T0))
    assert (job.status, job.attempts, job.cursor) == ("queued", 0, "")
    assert run(store.job_pending("merge", None)) and not run(store.job_pending("merge", "u"))
    first = run(store.claim_job(T0, T1))
    assert first is not None and (first.status, first.attempts) == ("running", 1)
    assert run(store.claim_job(T0, T1)) is None  # the lease holds
    assert run(store.checkpoint_job(first, "u1", {"users": 1}, T0, T1))
    second = run(store.claim_job(T2, T3))  # the lease expired: taken over
    assert second is not None and second.attempts == 2 and second.cursor == "u1"
    assert not run(store.checkpoint_job(first, "u2", {}, T2, T3))  # fenced off
    assert not run(store.finish_job(first, "done", {}, T2))
    assert run(store.finish_job(second, "failed", {"users": 1}, T2, error="boom"))
    finished = run(store.get_job("j1"))
    assert finished is not None and (finished.status, finished.error, finished.finished_at) \
        == ("failed", "boom", T2)
    assert not run(store.job_pending("merge", None))
    run(store.create_job("j2", "compress", "u", T1))
    assert [j.id for j in run(store.recent_jobs(5))] == ["j2", "j1"]
    assert run(store.get_job("missing")) is None


def test_next_user_walks_users_in_id_order(store: Store) -> None:
    put(store, memory(user="b"), memory(user="a"), memory(user="b"))
    assert run(store.next_user("")) == "a"
    assert run(store.next_user("a")) == "b"
    assert run(store.next_user("b")) is None


def test_next_user_walks_only_the_range_it_is_given(store: Store) -> None:
    put(store, memory(user="a\x1fx"), memory(user="a\x1fy"), memory(user="ab"),
        memory(user="b\x1fx"), memory(user="c"))
    tenant_a = UserRange(prefix="a\x1f")
    assert run(store.next_user("", tenant_a)) == "a\x1fx"
    assert run(store.next_user("a\x1fx", tenant_a)) == "a\x1fy"
    assert run(store.next_user("a\x1fy", tenant_a)) is None  # "ab", "b\x1fx" are not a's
    unprefixed = UserRange(without="\x1f")
    assert run(store.next_user("", unprefixed)) == "ab"
    assert run(store.next_user("ab", unprefixed)) == "c"
    assert run(store.next_user("c", unprefixed)) is None


def test_jobs_record_their_tenant_and_list_by_it(store: Store) -> None:
    run(store.create_job("j1", "merge", "a\x1fu", T0, tenant="a"))
    run(store.create_job("j2", "merge", None, T1, tenant="b"))
    run(store.create_job("j3", "expire", None, T2))
    job = run(store.get_job("j1"))
    assert job is not None and job.tenant == "a"
    assert [j.id for j in run(store.recent_jobs(5, "a"))] == ["j1"]
    assert [j.id for j in run(store.recent_jobs(5))] == ["j3", "j2", "j1"]
    assert run(store.job_pending("merge", None, "b"))
    assert not run(store.job_pending("merge", None, "a"))
    assert not run(store.job_pending("merge", None))  # every tenant's: none pending


def test_enqueue_returns_the_equal_pending_job_and_caps_a_tenant(store: Store) -> None:
    first = run(store.enqueue_job("j1", "merge", "a\x1fu", T0, tenant="a", max_pending=2))
    assert first.created and first.job is not None and first.job.id == "j1"
    again = run(store.enqueue_job("j2", "merge", "a\x1fu", T1, tenant="a", max_pending=2))
    assert not again.created and again.job is not None and again.job.id == "j1"
    other = run(store.enqueue_job("j3", "merge", None, T1, tenant="a", max_pending=2))
    assert other.created
    full = run(store.enqueue_job("j4", "merge", "a\x1fv", T1, tenant="a", max_pending=2))
    assert full.job is None and not full.created
    assert run(store.get_job("j4")) is None
    equal = run(store.enqueue_job("j5", "merge", None, T2, tenant="a", max_pending=2))
    assert equal.job is not None and equal.job.id == "j3"  # an equal job still answers
    elsewhere = run(store.enqueue_job("j6", "merge", "b\x1fu", T2, tenant="b", max_pending=2))
    assert elsewhere.created
    claimed = run(store.claim_job(T3, T3))
    assert claimed is not None
    assert run(store.finish_job(claimed, "done", {}, T3))
    after = run(store.enqueue_job("j7", "merge", claimed.user_id, T3, tenant=claimed.tenant,
                                  max_pending=2))
    assert after.created  # the finished one is no longer pending


def test_claims_take_service_jobs_first_then_tenants_in_turns(store: Store) -> None:
    for job_id, tenant, at in (("a1", "a", T0), ("a2", "a", T1), ("a3", "a", T1),
                               ("b1", "b", T2), ("s1", None, T3)):
        run(store.create_job(job_id, "merge", None if tenant is None else f"{job_id}",
                             at, tenant=tenant))
    order = []
    while (job := run(store.claim_job(T3, "2999-01-01T00:00:00.000000Z"))) is not None:
        order.append(job.id)
    assert order == ["s1", "a1", "b1", "a2", "a3"]


def test_prune_drops_what_is_past_retention_only(store: Store) -> None:
    live, old, recent = memory(text="live"), memory(text="old"), memory(text="recent")
    put(store, live, old, recent)
    run(store.delete(old.memory.id, T0))
    run(store.delete(recent.memory.id, T2))
    for job_id, at in (("j-old", T0), ("j-new", T2)):
        run(store.create_job(job_id, "merge", None, at))
        claimed = run(store.claim_job(at, at))
        assert claimed is not None
        run(store.finish_job(claimed, "done", {}, at))
    run(store.create_job("j-queued", "merge", "u", T0))
    for event_id, status, at in (("e-old", "SUCCEEDED", T0), ("e-new", "FAILED", T2),
                                 ("e-pending", "PENDING", T0)):
        run(store.create_event(event_id, "alice", {"text": "x"}, at))
        if status != "PENDING":
            run(store.save_event(event_id, status, at))  # type: ignore[arg-type]
    kept_nothing = run(store.prune(PruneBefore(None, None, None)))
    assert kept_nothing == Pruned(0, 0, 0)
    pruned = run(store.prune(PruneBefore(jobs=T1, events=T1, history=T1)))
    assert pruned == Pruned(jobs=1, events=1, history=2)
    assert run(store.get_job("j-old")) is None
    assert {j.id for j in run(store.recent_jobs(10))} == {"j-new", "j-queued"}
    assert run(store.get_event("e-old")) is None
    assert run(store.get_event("e-new")) is not None
    assert run(store.get_event("e-pending")) is not None
    assert run(store.history(old.memory.id)) == []
    assert len(run(store.history(recent.memory.id))) == 2
    assert len(run(store.history(live.memory.id))) == 1
    everything = run(store.prune(PruneBefore(jobs=T3, events=T3, history=T3)))
    assert everything == Pruned(jobs=1, events=1, history=2)
    assert len(run(store.history(live.memory.id))) == 1  # a live memory keeps its history


# -- API keys -------------------------------------------------------------------------------
def test_keys_are_found_listed_and_revoked(keys: KeyTable) -> None:
    first = KeyRow(uuid7(), "h1", "acme", "write", "ci", 5.0, T0, None, None)
    second = KeyRow(uuid7(), "h2", "other", "admin", "", None, T1, T3, None)
    keys.insert(first)
    keys.insert(second)
    assert keys.find(first.key_id) == first
    assert keys.find("missing") is None
    assert keys.all(None) == [first, second]
    assert keys.all("acme") == [first]
    assert keys.revoke(first.key_id, T2)
    assert not keys.revoke(first.key_id, T3)  # already revoked: kept as it was
    assert keys.find(first.key_id) == replace(first, revoked_at=T2)
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error
        keys.insert(first)
