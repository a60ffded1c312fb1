"""The change feed (``gateway.store.base.ChangeFeed``) against each backend, through the
protocol only: every write kind appears, in commit order, written by the same transaction as
the write (a refused write adds nothing); a second store on the same data sees the changes
with another origin; trimming keeps the newest and tells a late follower it missed some.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from support import memory, run

from gateway.domain.model import Memory, StoredMemory
from gateway.store.base import Store
from gateway.store.types import Fold, RowConflict, StaleWrite, WritePlan

T1, T2, T3 = "2024-01-02T00:00:00.000000Z", "2024-01-03T00:00:00.000000Z", \
    "2024-01-04T00:00:00.000000Z"


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()


def vector(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def put(store: Store, *items: StoredMemory) -> list[Memory]:
    run(store.insert_many(list(items)))
    return [i.memory for i in items]


def kinds_since(store: Store, after: int) -> list[tuple[str, str | None, str | None]]:
    page = run(store.changes_since(after, 1000))
    seqs = [c.seq for c in page.changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(c.origin == store.origin for c in page.changes)
    return [(c.kind, c.memory_id, c.user_id) for c in page.changes]


def test_every_write_kind_appears_in_order(store: Store) -> None:
    assert run(store.last_change()) == 0
    a, b = put(store, memory(text="one", priority=1), memory(text="two", priority=1))
    assert kinds_since(store, 0) == [("add", a.id, "alice"), ("add", b.id, "alice")]

    mark = run(store.last_change())
    moved = StoredMemory(replace(a, text="one!", updated_at=T1), vector(0, 1, 0, 0))
    assert run(store.update(moved, a))
    assert kinds_since(store, mark) == [("update", a.id, "alice")]

    mark = run(store.last_change())
    summary = memory(text="summary", sources=(moved.memory.id, b.id))
    run(store.fold([Fold(summary, [moved.memory, b])], T2))
    assert sorted(kinds_since(store, mark)) == sorted([
        ("add", summary.memory.id, "alice"), ("archive", a.id, "alice"),
        ("archive", b.id, "alice")])

    mark = run(store.last_change())
    run(store.delete(summary.memory.id, T3))  # a deleted summary gives its sources back
    assert sorted(kinds_since(store, mark)) == sorted([
        ("delete", summary.memory.id, "alice"), ("restore", a.id, "alice"),
        ("restore", b.id, "alice")])

    mark = run(store.last_change())
    assert run(store.erase(a.id, T3)) is not None
    assert kinds_since(store, mark) == [("delete", a.id, "alice")]

    (c,) = put(store, memory(user="bob"))
    mark = run(store.last_change())
    run(store.delete_user("alice", T3))
    assert kinds_since(store, mark) == [("delete", b.id, "alice"), ("user", None, "alice")]
    mark = run(store.last_change())
    run(store.erase_user("bob"))
    assert kinds_since(store, mark) == [("delete", c.id, "bob"), ("user", None, "bob")]


def test_a_metadata_only_update_is_not_a_change_for_the_index(store: Store) -> None:
    (a,) = put(store, memory())
    mark = run(store.last_change())
    assert run(store.update(replace(a, metadata={"k": "v"}, updated_at=T1), a))
    assert kinds_since(store, mark) == []


def test_a_migration_gives_shadow_and_version_changes_not_a_row_per_memory(store: Store
                                                                           ) -> None:
    run(store.set_active_version("embedder", "1"))
    a, b = put(store, memory(text="one"), memory(text="two"))
    mark = run(store.last_change())
    assert run(store.begin_migration("embedder", "2", T1))
    assert not run(store.begin_migration("embedder", "3", T2))  # one runs: nothing changes
    assert run(store.model_state("embedder")).target == "2"  # type: ignore[union-attr]
    batch = run(store.migration_pending("", 10))
    run(store.put_shadow_batch("embedder", "embedder:2", batch,
                               np.stack([vector(1, 0, 0, 1)] * 2)))
    rows = run(store.feed_rows([a.id, b.id]))
    assert rows[a.id].shadow is not None and rows[a.id].shadow[0] == "embedder:2"
    assert run(store.switch_version("embedder", "2", "embedder:2"))
    assert kinds_since(store, mark) == [
        ("version", None, None), ("shadow", a.id, "alice"), ("shadow", b.id, "alice"),
        ("version", None, None)]
    rows = run(store.feed_rows([a.id]))
    assert rows[a.id].label == "embedder:2" and rows[a.id].shadow is None
    np.testing.assert_allclose(rows[a.id].vector, vector(1, 0, 0, 1))
    mark = run(store.last_change())
    run(store.begin_migration("embedder", "3", T2))
    run(store.abandon_migration("embedder"))
    assert kinds_since(store, mark) == [("version", None, None), ("version", None, None)]


def test_a_refused_write_adds_no_change(store: Store) -> None:
    (a,) = put(store, memory())
    mark = run(store.last_change())
    with pytest.raises(RowConflict):  # the second row's id is taken: neither is written
        run(store.insert_many([memory(text="new"), StoredMemory(a, vector(1, 0, 0, 0))]))
    with pytest.raises(StaleWrite):
        run(store.apply(WritePlan(inserts=[memory(text="other")],
                                  deletes=[replace(a, updated_at=T3)], at=T3)))
    assert not run(store.update(replace(a, text="late", updated_at=T2),
                                replace(a, updated_at=T1)))
    assert run(store.last_change()) == mark
    assert kinds_since(store, mark) == []


def test_feed_rows_give_what_an_index_needs(store: Store) -> None:
    live, archived = put(store, memory(text="live"), memory(text="old", archived_at=T1))
    rows = run(store.feed_rows([live.id, archived.id, "gone"]))
    assert set(rows) == {live.id, archived.id}
    assert (rows[live.id].user_id, rows[live.id].archived, rows[live.id].label) == (
        "alice", False, "embedder:1")
    assert rows[archived.id].archived and rows[live.id].shadow is None
    np.testing.assert_allclose(rows[live.id].vector, np.ones(4) / 2)


def test_a_second_store_sees_the_changes_of_the_first(make_store: Callable[[], Store]) -> None:
    writer, follower = make_store(), make_store()
    assert writer.origin != follower.origin
    start = run(follower.last_change())
    assert run(follower.wait_for_change(start, 0.01)) == start  # nothing new: times out

    async def wait_then_write() -> int:
        waiting = asyncio.create_task(follower.wait_for_change(start, 60))
        await writer.insert_many([memory(text="from the writer")])
        return await waiting

    seen = asyncio.run(wait_then_write())
    assert seen == start + 1
    page = run(follower.changes_since(start, 10))
    assert [(c.kind, c.origin) for c in page.changes] == [("add", writer.origin)]
    assert not page.missed


def test_trimming_keeps_the_newest_and_flags_a_gap(store: Store) -> None:
    put(store, memory(text="a"), memory(text="b"), memory(text="c"))
    last = run(store.last_change())
    assert run(store.trim_changes(time.time() + 60)) == 2  # all but the newest
    assert run(store.last_change()) == last
    assert run(store.changes_since(last - 1, 10)).missed is False
    assert run(store.changes_since(0, 10)).missed is True  # a follower that fell behind
    assert run(store.trim_changes(0.0)) == 0


def test_a_users_change_stamp_moves_with_its_changes_only_and_never_goes_back(
        make_store: Callable[[], Store]) -> None:
    """What ``gateway.memory.image_cache`` relies on: equal stamps mean the user's memories
    did not change, whichever store instance wrote, and trimming never brings a stamp back."""
    store, other = make_store(), make_store()
    empty = run(store.user_change_stamp("alice"))
    (a,) = put(store, memory(text="one"))
    first = run(store.user_change_stamp("alice"))
    assert first > empty
    put(store, memory(user="bob", text="bob's"))
    assert run(store.user_change_stamp("alice")) == first  # another user's change
    assert run(other.user_change_stamp("alice")) == first  # the same on every replica
    assert run(other.update(StoredMemory(replace(a, text="one!", updated_at=T1),
                                         vector(0, 1, 0, 0)), a))
    edited = run(store.user_change_stamp("alice"))  # another replica's write counts
    assert edited > first
    stamps = [edited]
    for _ in range(2):  # trimming drops alice's rows, then a new change of hers
        put(store, memory(user="bob", text=f"bob {len(stamps)}"))
        assert run(store.trim_changes(time.time() + 60)) > 0
        assert run(store.changes_since(0, 10)).changes[0].user_id == "bob"
        stamps.append(run(store.user_change_stamp("alice")))
        assert stamps[-1] >= stamps[-2]  # never back, though her rows are gone
        put(store, memory(text=f"alice {len(stamps)}"))
        stamps.append(run(store.user_change_stamp("alice")))
        assert stamps[-1] > stamps[-2]
    assert run(store.user_change_stamp("nobody")) == run(store.user_change_stamp("carol"))


def test_a_vector_changed_without_its_target_vector_is_re_embedded_before_the_switch(
        make_store: Callable[[], Store]) -> None:
    """A replica that has not followed the start of a migration yet updates a memory the job
    has re-embedded already: the stale target vector goes, the job is offered the memory
    again after its cursor's end, and the switch waits for it."""
    store, lagging = make_store(), make_store()
    run(store.set_active_version("embedder", "1"))
    a, b = put(store, memory(text="one"), memory(text="two"))
    assert run(store.begin_migration("embedder", "2", T1))
    batch = run(store.migration_pending("", 10))
    run(store.put_shadow_batch("embedder", "embedder:2", batch,
                               np.stack([vector(1, 0, 0, 1)] * 2)))
    cursor = run(store.model_state("embedder")).cursor  # type: ignore[union-attr]
    changed = replace(a, text="one, changed", updated_at=T2)
    assert run(lagging.update(StoredMemory(changed, vector(0, 0, 1, 0)), a))  # no target vector
    assert run(lagging.feed_rows([a.id]))[a.id].shadow is None
    assert not run(store.switch_version("embedder", "2", "embedder:2"))
    again = run(store.migration_pending(cursor, 10))
    assert [(p.id, p.text) for p in again] == [(a.id, "one, changed")]
    run(store.put_shadow_batch("embedder", "embedder:2", again, np.stack([vector(0, 1, 1, 0)])))
    assert run(store.model_state("embedder")).cursor == cursor  # type: ignore[union-attr]
    assert run(store.migration_pending(cursor, 10)) == []
    assert run(store.switch_version("embedder", "2", "embedder:2"))
    np.testing.assert_allclose(run(store.feed_rows([a.id]))[a.id].vector, vector(0, 1, 1, 0))
    assert b.id in run(store.feed_rows([b.id]))
