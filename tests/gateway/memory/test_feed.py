"""The change feed's follower (``gateway.memory.feed``) keeps a second gateway's index in step
with writes made through another store instance on the same data (a second gateway).

The writer writes through its own store; the follower's service has a real partitioned index
loaded from the store, as at a gateway's start. After each write, the follower's index must
hold exactly the writer's live, unarchived memories with their current vectors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from support import memory, until

from gateway.domain.model import StoredMemory
from gateway.index.factory import build_index
from gateway.inference.client import EmbedderClient
from gateway.memory.feed import FeedFollower
from gateway.memory.service import MemoryService
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.store.base import Store
from gateway.store.postgres.store import PostgresStore
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.types import Fold

Backend = tuple[str, pytest.FixtureRequest]  # a BACKENDS name and the test's request
T1, T2 = "2024-01-02T00:00:00.000000Z", "2024-01-03T00:00:00.000000Z"
BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Store]] = {
    "sqlite": lambda tmp, _: SQLiteStore(tmp / "memories.sqlite3", feed_poll_s=0.01),
    "postgres": lambda _, request: PostgresStore(request.getfixturevalue("postgres_url")),
}


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


@dataclass
class Pair:
    writer: Store
    follower: FeedFollower
    metrics: Metrics

    @property
    def index(self):  # the follower's active index
        return self.follower.service.index

    def held(self, user: str) -> dict[str, np.ndarray]:
        """What the follower's index holds for ``user``: id -> the vector it scores with."""
        if self.index.size(user) == 0:
            return {}
        held = {}
        for axis in range(4):
            for hit in self.index.search(user, np.eye(4, dtype=np.float32)[axis], 100):
                held.setdefault(hit.id, np.zeros(4, dtype=np.float32))[axis] = hit.score
        return held

    async def stored(self, user: str) -> dict[str, np.ndarray]:
        ids, vectors = await self.writer.user_vectors(user)
        return dict(zip(ids, vectors, strict=True))

    async def assert_in_step(self, *users: str) -> None:
        await self.follower.catch_up()
        for user in users:
            stored, held = await self.stored(user), self.held(user)
            assert set(held) == set(stored), user
            for memory_id, vector in stored.items():
                np.testing.assert_allclose(held[memory_id], vector, atol=1e-5)


@asynccontextmanager
async def pair(tmp: Path, backend: Backend) -> AsyncIterator[Pair]:
    name, request = backend
    writer, follower_store = BACKENDS[name](tmp, request), BACKENDS[name](tmp, request)
    await writer.open()
    await follower_store.open()
    metrics = Metrics()
    embedder = EmbedderClient("127.0.0.1:9", "embedder", timeout_s=1, retry_after_s=1,
                              metrics=metrics)  # never called: nothing here embeds
    service = MemoryService(follower_store, build_index(Settings(data_dir=tmp)), embedder)
    follower = FeedFollower(service, follower_store, metrics=metrics, batch=3)
    try:
        await follower.mark()
        await service.build_index()
        yield Pair(writer, follower, metrics)
    finally:
        await embedder.close()
        await follower_store.close()
        await writer.close()


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Backend:
    return str(request.param), request


def test_every_kind_of_write_reaches_the_follower(tmp_path: Path, backend: Backend) -> None:
    async def scenario() -> None:
        async with pair(tmp_path, backend) as p:
            w = p.writer
            before = memory(text="stored before the start")
            await w.insert_many([before])  # after the mark: the load and the feed both see it
            items = [StoredMemory(memory(text=f"m{i}").memory, unit(1, i, 0, 0))
                     for i in range(5)] + [memory(user="bob")]
            await w.insert_many(items)
            await p.assert_in_step("alice", "bob")
            assert p.follower.stats.applied >= 6 and p.follower.stats.skipped == 0

            first = items[0].memory
            await w.update(StoredMemory(replace(first, text="moved", updated_at=T1),
                                        unit(0, 0, 1, 0)), first)
            await p.assert_in_step("alice")

            summary = memory(text="summary", sources=(items[1].memory.id, items[2].memory.id))
            await w.fold([Fold(summary, [items[1].memory, items[2].memory])], T2)
            await p.assert_in_step("alice")
            assert items[1].memory.id not in p.held("alice")  # archived: out of the index
            await w.delete(summary.memory.id, T2)  # its sources come back
            await p.assert_in_step("alice")
            assert items[1].memory.id in p.held("alice")

            await w.delete(items[3].memory.id, T2)
            assert await w.erase(items[4].memory.id, T2) is not None
            await p.assert_in_step("alice")
            await w.delete_user("bob", T2)
            await p.assert_in_step("bob")
            assert p.index.size("bob") == 0

            assert p.metrics.feed_applied_seq._value.get() == await w.last_change()
            assert p.metrics.feed_lag_changes._value.get() == 0

    asyncio.run(scenario())


def test_the_follower_skips_its_own_writes(tmp_path: Path, backend: Backend) -> None:
    async def scenario() -> None:
        async with pair(tmp_path, backend) as p:
            own = p.follower.service.store
            await own.insert_many([memory(text="mine")])  # the service would mirror it itself
            await p.follower.catch_up()
            assert p.follower.stats.skipped == 1 and p.follower.stats.applied == 0
            assert p.index.size("alice") == 0
            assert p.follower.stats.applied_seq == await own.last_change()

    asyncio.run(scenario())


def test_following_forever_picks_up_writes_as_they_come(tmp_path: Path,
                                                         backend: Backend) -> None:
    async def scenario() -> None:
        async with pair(tmp_path, backend) as p:
            task = asyncio.create_task(p.follower.follow_forever())
            try:
                item = memory(text="later")
                await p.writer.insert_many([item])
                await until(lambda: p.index.size("alice") == 1, "the write to reach the index")
                await p.writer.delete(item.memory.id, T1)
                await until(lambda: p.index.size("alice") == 0, "the delete to reach it")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())


def test_a_follower_behind_the_trimmed_log_reloads_from_the_store(tmp_path: Path,
                                                                  backend: Backend) -> None:
    async def scenario() -> None:
        async with pair(tmp_path, backend) as p:
            await p.writer.insert_many([memory(text="a"), memory(text="b")])
            await p.writer.insert_many([memory(text="c")])
            assert await p.writer.trim_changes(time.time() + 60) > 0  # the follower missed them
            await p.assert_in_step("alice")
            assert p.follower.stats.reloads == 1 and p.index.size("alice") == 3

    asyncio.run(scenario())


def test_concurrent_writers_lose_no_change_while_followed(tmp_path: Path,
                                                          backend: Backend) -> None:
    """Many transactions commit at once (PostgreSQL runs them side by side) while the
    follower reads the feed: seq order must be commit order, or the follower would move past
    a change committed late and never apply it."""
    async def scenario() -> None:
        async with pair(tmp_path, backend) as p:
            task = asyncio.create_task(p.follower.follow_forever())
            try:
                items = [memory(user=f"user-{n % 4}", text=f"t{n}") for n in range(60)]
                await asyncio.gather(*(p.writer.insert_many([i]) for i in items))
                await until(lambda: sum(p.index.size(f"user-{u}") for u in range(4)) == 60,
                            "every concurrent write to reach the follower")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await p.assert_in_step(*(f"user-{u}" for u in range(4)))

    asyncio.run(scenario())


def test_the_follower_survives_a_postgres_restart(tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    """The server goes away under a waiting follower (its LISTEN connection breaks) and comes
    back: the follower reconnects and catches up from the change log, with no restart."""
    server = request.getfixturevalue("postgres_server")

    async def scenario() -> None:
        async with pair(tmp_path, ("postgres", request)) as p:
            task = asyncio.create_task(p.follower.follow_forever())
            try:
                await p.writer.insert_many([memory(text="before")])
                await until(lambda: p.index.size("alice") == 1, "the first write")
                await asyncio.to_thread(server.stop)
                try:
                    await asyncio.sleep(0)  # the follower meets the broken connection
                finally:
                    await asyncio.to_thread(server.start)
                await p.writer.insert_many([memory(text="after")])
                await until(lambda: p.index.size("alice") == 2, "the write after the restart")
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
