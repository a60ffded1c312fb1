"""Migration state in SQLite: resumable cursor, stale rows skipped, all-or-nothing switch."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
from support import memory, opened

from gateway.memory.service import utc_now


def test_migration_round_trip(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        await store.set_active_version("embedder", "1")
        items = [memory(text=f"t{i}") for i in range(5)]
        await store.insert_many(items)
        await store.begin_migration("embedder", "2", utc_now())
        first = await store.migration_pending("", 3)
        assert [p.id for p in first] == [i.memory.id for i in items[:3]]
        # Memory 1 is updated (with its new-version vector) while the batch is in flight.
        changed = replace(items[1].memory, text="new", updated_at=utc_now())
        await store.update(changed, items[1].memory, shadow=("embedder:2", np.full(4, 9.0)))
        written = await store.put_shadow_batch("embedder", "embedder:2", first, np.zeros((3, 4)))
        assert [p.id for p in written] == [items[0].memory.id, items[2].memory.id]
        state = await store.model_state("embedder")
        assert state is not None and state.target == "2" and state.cursor == first[-1].id
        assert await store.migration_progress() == (3, 5)
        assert not await store.switch_version("embedder", "2", "embedder:2")  # 2 rows missing
        rest = await store.migration_pending(state.cursor, 10)
        await store.put_shadow_batch("embedder", "embedder:2", rest, np.ones((2, 4)))
        await store.delete(items[4].memory.id, utc_now())  # cascades to its shadow row
        assert await store.migration_progress() == (4, 4)
        assert await store.switch_version("embedder", "2", "embedder:2")
        rows = {key: vector for _, key, vector in await store.vectors()}
        np.testing.assert_array_equal(rows[items[1].memory.id], np.full(4, 9.0))
        np.testing.assert_array_equal(rows[items[0].memory.id], np.zeros(4))
        assert {(await store.get(k)).embedding_model for k in rows} == {"embedder:2"}  # type: ignore[union-attr]
        state = await store.model_state("embedder")
        assert state is not None and (state.active, state.target) == ("2", None)
        assert await store.migration_progress() == (0, 4)
        await store.close()

    asyncio.run(scenario())


def test_abandon_keeps_the_active_version(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        await store.set_active_version("embedder", "1")
        await store.insert_many([memory()])
        await store.begin_migration("embedder", "2", utc_now())
        await store.put_shadow_batch("embedder", "embedder:2", await store.migration_pending("", 5),
                                 np.zeros((1, 4)))
        await store.abandon_migration("embedder")
        state = await store.model_state("embedder")
        assert state is not None and (state.active, state.target, state.cursor) == ("1", None, "")
        assert await store.shadow_vectors() == []
        await store.close()

    asyncio.run(scenario())
