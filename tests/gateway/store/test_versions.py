"""Migration state in SQLite: resumable cursor, stale rows skipped, all-or-nothing switch."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
from support import memory, opened

from gateway.memory.service import utc_now
from gateway.store.versions import VersionStore


def test_migration_round_trip(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        versions = VersionStore(store)
        await versions.set_active("embedder", "1")
        items = [memory(text=f"t{i}") for i in range(5)]
        await store.insert_many(items)
        await versions.begin("embedder", "2", utc_now())
        first = await versions.pending("", 3)
        assert [p.id for p in first] == [i.memory.id for i in items[:3]]
        # Memory 1 is updated (with its new-version vector) while the batch is in flight.
        changed = replace(items[1].memory, text="new", updated_at=utc_now())
        await store.update(changed, items[1].memory, shadow=("embedder:2", np.full(4, 9.0)))
        written = await versions.put_batch("embedder", "embedder:2", first, np.zeros((3, 4)))
        assert [p.id for p in written] == [items[0].memory.id, items[2].memory.id]
        state = await versions.state("embedder")
        assert state is not None and state.target == "2" and state.cursor == first[-1].id
        assert await versions.progress() == (3, 5)
        assert not await versions.switch("embedder", "2", "embedder:2")  # 2 rows missing
        rest = await versions.pending(state.cursor, 10)
        await versions.put_batch("embedder", "embedder:2", rest, np.ones((2, 4)))
        await store.delete(items[4].memory.id, utc_now())  # cascades to its shadow row
        assert await versions.progress() == (4, 4)
        assert await versions.switch("embedder", "2", "embedder:2")
        rows = {key: vector for _, key, vector in await store.vectors()}
        np.testing.assert_array_equal(rows[items[1].memory.id], np.full(4, 9.0))
        np.testing.assert_array_equal(rows[items[0].memory.id], np.zeros(4))
        assert {(await store.get(k)).embedding_model for k in rows} == {"embedder:2"}  # type: ignore[union-attr]
        state = await versions.state("embedder")
        assert state is not None and (state.active, state.target) == ("2", None)
        assert await versions.progress() == (0, 4)
        await store.close()

    asyncio.run(scenario())


def test_abandon_keeps_the_active_version(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await opened(tmp_path / "m.db")
        versions = VersionStore(store)
        await versions.set_active("embedder", "1")
        await store.insert_many([memory()])
        await versions.begin("embedder", "2", utc_now())
        await versions.put_batch("embedder", "embedder:2", await versions.pending("", 5),
                                 np.zeros((1, 4)))
        await versions.abandon("embedder")
        state = await versions.state("embedder")
        assert state is not None and (state.active, state.target, state.cursor) == ("1", None, "")
        assert await versions.shadow_vectors() == []
        await store.close()

    asyncio.run(scenario())
