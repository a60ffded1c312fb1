"""Single writes go before searches' next heavy step (gateway.write_first): the gate
alone, and a real service (SQLite store, exact index; client vectors, so no Triton) whose
search parks at the gate while a write is in flight and whose writes never wait on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from support import until

from gateway.domain.model import SearchFilters
from gateway.index.factory import build_index
from gateway.inference.client import EmbedderClient, ModelInfo
from gateway.memory.changes import NewMemory
from gateway.memory.dedup import DedupPolicy
from gateway.memory.search import SearchQuery
from gateway.memory.service import MemoryService
from gateway.memory.writeplan import Draft
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store.sqlite.store import SQLiteStore
from gateway.write_first import WriteFirst

DIM = 384


def test_a_search_step_waits_until_the_last_write_is_done() -> None:
    async def scenario() -> None:
        gate = WriteFirst(max_wait_s=60)
        async with gate.writing():
            async with gate.writing():
                step = asyncio.create_task(gate.before_search_step())
                await until(lambda: gate.waiting == 1, "the step to park")
            assert gate.writes_in_flight == 1
            await asyncio.sleep(0)
            assert not step.done()  # one write is still in flight
        await step
        assert gate.waiting == 0 and gate.writes_in_flight == 0
        await gate.before_search_step()  # no write: straight through

    asyncio.run(scenario())


def test_the_wait_is_bounded_and_can_be_switched_off() -> None:
    async def scenario() -> None:
        bounded, off = WriteFirst(max_wait_s=0.01), WriteFirst(max_wait_s=0)
        async with bounded.writing(), off.writing():
            await bounded.before_search_step()  # returns although the write goes on
            await off.before_search_step()
            assert bounded.writes_in_flight == 1 and bounded.waiting == 0

    asyncio.run(scenario())


def _unit(seed: int) -> list[float]:
    row = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return (row / np.linalg.norm(row)).tolist()


def test_a_service_search_parks_while_writes_pass_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "memories.sqlite3")
        await store.open()
        embedder = EmbedderClient("127.0.0.1:9", "embedder", timeout_s=1, retry_after_s=1,
                                  metrics=Metrics())  # never called: client vectors only
        service = MemoryService(store, build_index(Settings(data_dir=tmp_path)), embedder,
                                write_first=WriteFirst(max_wait_s=60))
        service.models.pin(ModelInfo("embedder", "1", DIM), None)  # as if Triton connected
        try:
            await service.build_index()
            await service.add_many([NewMemory("u", f"memory {n}", embedding=_unit(n))
                                    for n in range(5)])
            query = SearchQuery(user_id="u", embedding=_unit(99), limit=10, mode="semantic")
            gate = service.write_first
            async with gate.writing():  # a write in flight
                search = asyncio.create_task(service.search(query))
                await until(lambda: gate.waiting == 1, "the search to park at the gate")
                # another single write does not wait for the parked search
                added = await service.ingest(
                    [Draft(NewMemory("u", "written meanwhile", embedding=_unit(7)))],
                    DedupPolicy(), single=True)
                assert added[0].event == "ADD"
                assert not search.done() and gate.waiting == 1
            found = await search
            assert len(found) == 6  # it ran after the writes: the new memory is among them
            assert added[0].memory.id in {hit.memory.id for hit in found}
        finally:
            await embedder.close()
            await store.close()

    asyncio.run(scenario())


def test_a_running_keyword_query_pauses_for_a_write(tmp_path: Path) -> None:
    """The store's keyword thread pauses inside its query (a SQLite progress callback) while
    a single write is in flight, and finishes with the same answer once it is done."""
    async def scenario() -> None:
        gate = WriteFirst(max_wait_s=60)
        store = SQLiteStore(tmp_path / "memories.sqlite3", write_first=gate)
        await store.open()
        embedder = EmbedderClient("127.0.0.1:9", "embedder", timeout_s=1, retry_after_s=1,
                                  metrics=Metrics())  # never called: client vectors only
        service = MemoryService(store, build_index(Settings(data_dir=tmp_path)), embedder,
                                write_first=gate)
        service.models.pin(ModelInfo("embedder", "1", DIM), None)
        try:
            await service.build_index()
            await service.add_many([NewMemory("u", f"a shared memory number {n}",
                                              embedding=_unit(n)) for n in range(400)])
            idle = await store.keyword_search("u", "shared memory", 10, SearchFilters())
            async with gate.writing():
                paused = asyncio.create_task(
                    store.keyword_search("u", "shared memory", 10, SearchFilters()))
                await until(lambda: gate.waiting == 1, "the keyword query to pause")
                assert not paused.done()
            assert await paused == idle and len(idle) == 10
        finally:
            await embedder.close()
            await store.close()

    asyncio.run(scenario())
