"""Writes never wait for searches: a search is held mid-computation on purpose (a device whose
scoring blocks on an Event the test controls), and writes to its user and to others complete.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from gateway.index.base import Hit
from gateway.index.exact import ExactIndex
from gateway.index.hnsw import HnswBuilder, HnswGraph
from gateway.index.partitioned import AnnPolicy, PartitionedIndex
from gateway.index.tiers import HostDevice, HotTier

DEADLINE_S = 30


def unit(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


class GatedDevice(HostDevice):
    """Scores like the host twin, but the next scoring call waits until ``release`` is set."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def scores(self, handle: object, queries: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(DEADLINE_S), "the test never released the search"
        return super().scores(handle, queries, rows)


@pytest.fixture
def gated() -> tuple[PartitionedIndex, GatedDevice]:
    device = GatedDevice()
    return PartitionedIndex(tier=HotTier(device, 1 << 30, promote_after=1)), device


def held_search(index: PartitionedIndex, device: GatedDevice, pool: ThreadPoolExecutor,
                user: str, query: np.ndarray) -> Future[list[Hit]]:
    """A search of ``user`` that is inside its scoring, and stays there until released."""
    index.search(user, query, 5)  # a miss: promotes the partition to the (gated) tier
    device.release.clear()
    found = pool.submit(index.search, user, query, 5)
    assert device.entered.wait(DEADLINE_S), "the search never reached its scoring"
    return found


def test_writes_complete_while_a_search_is_held(gated) -> None:
    index, device = gated
    b_rows = unit(200, seed=1)
    index.add("b", [f"b{i}" for i in range(200)], b_rows)
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = held_search(index, device, pool, "b", b_rows[7])
        # Another user, then the very user being searched: add, replace, remove, compact.
        index.add("a", ["a0", "a1"], unit(2, seed=2))
        assert index.remove("a", ["a1"]) == 1
        index.add("b", ["b-new"], b_rows[7:8])
        index.add("b", ["b3"], unit(1, seed=3))
        assert index.remove("b", [f"b{i}" for i in range(100, 200)]) == 100  # compacts
        assert index.drop("c") == 0
        assert (index.size("a"), index.size("b"), index.size()) == (1, 101, 102)
        assert index.stats().vectors == 102
        assert not found.done(), "the search finished early: this test proved nothing"
        device.release.set()
        hits = found.result(timeout=DEADLINE_S)
    # The held search answers from the partition as it was when it started.
    assert hits[0].id == "b7" and "b-new" not in {h.id for h in hits}
    assert all(h.id.startswith("b") for h in hits)
    after = index.search("b", b_rows[7], 2)
    assert {h.id for h in after} == {"b7", "b-new"}


class GatedGraph:
    """An HNSW graph whose searches wait on ``release`` once ``hold`` is set."""

    def __init__(self, inner: HnswGraph, hold: threading.Event, entered: threading.Event,
                 release: threading.Event) -> None:
        self.inner, self.rows = inner, inner.rows
        self.hold, self.entered, self.release = hold, entered, release

    def set_effort(self, effort: int) -> None:
        self.inner.set_effort(effort)

    @property
    def nbytes(self) -> int:
        return self.inner.nbytes

    def search(self, queries: np.ndarray, k: int, **kw: object) -> tuple[np.ndarray, np.ndarray]:
        if self.hold.is_set():
            self.entered.set()
            assert self.release.wait(DEADLINE_S), "the test never released the search"
        return self.inner.search(queries, k, **kw)  # type: ignore[arg-type]


class GatedGraphBuilder(HnswBuilder):
    def __init__(self) -> None:
        super().__init__(m=16, ef_construction=64)
        self.hold, self.entered, self.release = (threading.Event() for _ in range(3))

    def build(self, vectors: np.ndarray) -> GatedGraph:  # type: ignore[override]
        return GatedGraph(super().build(vectors), self.hold, self.entered, self.release)


def test_graph_search_held_while_the_partition_changes_and_rebuilds() -> None:
    builder = GatedGraphBuilder()
    index = PartitionedIndex(builder, AnnPolicy(threshold=300, rebuild_min_rows=0),
                             background=False)
    rows = unit(400, dim=32, seed=5)
    ids = [f"m{i}" for i in range(400)]
    index.add("kb", ids, rows)
    assert index.stats().graphs == 1
    builder.hold.set()
    with ThreadPoolExecutor(max_workers=1) as pool:
        found = pool.submit(index.search, "kb", rows[3], 5)
        assert builder.entered.wait(DEADLINE_S)
        builder.hold.clear()  # the rebuild below measures recall with graph searches
        index.remove("kb", ids[:150])  # past the drift bound: rebuilt inline, new snapshot
        assert index.stats().builds == 2 and index.stats().graph_vectors == 250
        assert not found.done()
        builder.release.set()
        hits = found.result(timeout=DEADLINE_S)
    assert hits[0].id == "m3"  # answered from the snapshot it started on
    assert index.search("kb", rows[3], 5)[0].id != "m3"


def test_concurrent_writers_and_searchers_agree_with_a_serial_replay() -> None:
    """Four threads write their own users while two search them; every answer names ids that
    were written, and the final state equals the same writes applied to a fresh index."""
    index, dim = PartitionedIndex(), 16
    stop = threading.Event()
    bad: list[str] = []

    def writer(user: str) -> list[tuple[str, list[str], np.ndarray | None]]:
        log: list[tuple[str, list[str], np.ndarray | None]] = []
        rng = np.random.default_rng(int(user[1:]))
        for step in range(150):
            if step % 5 == 4:
                keys = [f"{user}-{int(i)}" for i in rng.integers(0, step, 8)]
                index.remove(user, keys)
                log.append(("remove", keys, None))
            else:
                keys = [f"{user}-{step}", f"{user}-{int(rng.integers(0, step + 1))}"]
                keys = list(dict.fromkeys(keys))
                vectors = unit(len(keys), dim, seed=step)
                index.add(user, keys, vectors)
                log.append(("add", keys, vectors))
        return log

    def searcher() -> int:
        searches = 0
        while not stop.is_set():
            for user in ("u0", "u1", "u2", "u3"):
                for hit in index.search(user, unit(1, dim, seed=searches)[0], 10):
                    if not (isinstance(hit.id, str) and hit.id.startswith(user + "-")):
                        bad.append(f"{user}: {hit}")
                searches += 1
        return searches

    with ThreadPoolExecutor(max_workers=6) as pool:
        searchers = [pool.submit(searcher) for _ in range(2)]
        writers = {u: pool.submit(writer, u) for u in ("u0", "u1", "u2", "u3")}
        logs = {u: w.result(timeout=120) for u, w in writers.items()}
        stop.set()
        assert all(s.result(timeout=DEADLINE_S) > 0 for s in searchers)
    assert bad == []
    replay = ExactIndex()
    for user, log in logs.items():
        for op, keys, vectors in log:
            if op == "add":
                replay.add(user, keys, vectors)  # type: ignore[arg-type]
            else:
                replay.remove(user, keys)
    query = unit(1, dim, seed=999)[0]
    for user in logs:
        assert index.size(user) == replay.size(user)
        found, truth = index.search(user, query, 50), replay.search(user, query, 50)
        assert [h.id for h in found] == [h.id for h in truth]
        np.testing.assert_allclose([h.score for h in found], [h.score for h in truth], atol=1e-6)
    assert index.size() == replay.size() == index.stats().vectors


def test_gateway_answers_writes_while_a_search_is_held(client) -> None:
    """Through the API on a real Triton: while user b's search is held inside its scoring, a
    write for user a, a delete for user b and a metrics scrape all complete."""
    device = GatedDevice()
    index = client.app.state.gateway.service.index
    index.tier = HotTier(device, 1 << 30, promote_after=1)
    texts = ["I keep bees on the roof", "My sister lives in Lyon", "Tea, never coffee"]
    made = client.post("/v1/memories/batch", json={
        "items": [{"user_id": "b", "text": t} for t in texts]}).json()["results"]
    search = {"user_id": "b", "query": "honey", "limit": 2}
    assert client.post("/v1/memories/search", json=search).status_code == 200  # promotes b
    device.release.clear()
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = pool.submit(client.post, "/v1/memories/search", json=search)
        assert device.entered.wait(DEADLINE_S), "the search never reached its scoring"
        write = pool.submit(client.post, "/v1/memories", json={"user_id": "a", "text": "hi"})
        assert write.result(timeout=DEADLINE_S).status_code == 201
        assert client.delete(f"/v1/memories/{made[2]['id']}").status_code == 204
        assert "memory_index_vectors 3.0" in client.get("/metrics").text
        assert not held.done(), "the search finished early: this test proved nothing"
        device.release.set()
        found = held.result(timeout=DEADLINE_S)
    assert found.status_code == 200
    assert found.json()["results"][0]["text"] == "I keep bees on the roof"
