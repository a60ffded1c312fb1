"""Issue 19, findings 2 and 5, at the finder: what one Mem0 call may cost. The filter is tested
in a worker thread within a time limit and short-circuits; one call reads at most MAX_SCAN
memories over all its partitions; the pool asked of each partition is the v1 search cap; the
partitions come from the caller's own populations."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest
from support import memory, run

from gateway.api.mem0 import finder as finder_module
from gateway.api.mem0 import sieve
from gateway.api.mem0.entities import SINGLE_TENANT, Partitions
from gateway.api.mem0.filters import Cond, Logic, evaluate, parse
from gateway.api.mem0.finder import Finder
from gateway.api.schemas import MAX_SEARCH_LIMIT
from gateway.auth.scope import TenantScope
from gateway.domain.model import Memory
from gateway.errors import InvalidInput
from gateway.memory.search import SearchQuery
from gateway.store.types import Population


class Exploding(Mapping[str, Any]):
    """A record that fails the test when a field other than ``user_id`` is read."""

    def __getitem__(self, key: str) -> Any:
        if key == "user_id":
            return "alice"
        raise AssertionError(f"{key} was read after the answer was known")

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(["user_id", "metadata"])

    def __len__(self) -> int:
        return 2


def test_evaluation_short_circuits() -> None:
    first_fails = parse({"AND": [{"user_id": "bob"}, {"metadata": {"k": 1}}]})
    first_holds = parse({"OR": [{"user_id": "alice"}, {"metadata": {"k": 1}}]})
    assert evaluate(first_fails, Exploding()) is False
    assert evaluate(first_holds, Exploding()) is True
    assert evaluate(Logic("NOT", (first_holds.children[0], first_holds.children[1])),
                    Exploding()) is False


class FakeStore:
    def __init__(self, groups: list[Population]) -> None:
        self.groups = groups
        self.asked: list[tuple[str, str | None]] = []

    async def populations(self, tag_key: str, user_prefix: str = "",
                          without: str | None = None) -> list[Population]:
        self.asked.append((user_prefix, without))
        return [g for g in self.groups if g.user_id.startswith(user_prefix)
                and (without is None or without not in g.user_id)]


class FakeService:
    """Partitions of ``size`` memories each; records what the finder asked of it."""

    def __init__(self, users: list[str], size: int) -> None:
        self.store = FakeStore([Population(u, None, None, None, size) for u in users])
        self.rows = {u: [memory(user=u) for _ in range(size)] for u in users}
        self.read = 0
        self.limits: list[int] = []
        self.threads: set[int] = set()

    async def list_page(self, user: str, limit: int, cursor: str | None, **_: Any
                        ) -> tuple[list[Memory], str | None]:
        start = int(cursor or 0)
        page = [m.memory for m in self.rows[user][start:start + limit]]
        self.read += len(page)
        more = start + limit < len(self.rows[user])
        return page, str(start + limit) if more else None

    async def search(self, query: SearchQuery) -> list[Any]:
        self.limits.append(query.limit)
        return []


def test_one_call_reads_at_most_max_scan_over_all_partitions(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(finder_module, "MAX_SCAN", 25)
    monkeypatch.setattr(finder_module, "SCAN_PAGE", 10)
    service = FakeService([f"u{i}" for i in range(5)], size=10)  # 50 memories in all
    finder = Finder(service, Partitions(SINGLE_TENANT))  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="more than 25 memories"):
        run(finder.matching(parse({"user_id": "*"})))
    assert service.read <= 25


def test_the_pool_per_partition_is_the_v1_cap() -> None:
    service = FakeService(["alice"], size=0)
    finder = Finder(service, Partitions(SINGLE_TENANT))  # type: ignore[arg-type]
    node = parse({"user_id": "alice", "metadata": {"k": {"ne": 1}}})  # not pushed down
    run(finder.search(node, query="q", top_k=MAX_SEARCH_LIMIT, threshold=None, rerank=None,
                      mode=None, include_expired=False))
    assert service.limits == [MAX_SEARCH_LIMIT]


def test_partitions_come_from_the_callers_own_range() -> None:
    service = FakeService(["acme\x1fa", "globex\x1fb", "plain"], size=1)
    acme = Finder(service, Partitions(TenantScope("acme")))  # type: ignore[arg-type]
    assert run(acme.partitions(parse({"agent_id": "*", "user_id": "*"}))) == []
    assert run(acme.partitions(parse({"user_id": "*"}))) == ["acme\x1fa"]
    default = Finder(service, Partitions(TenantScope()))  # type: ignore[arg-type]
    assert run(default.partitions(parse({"user_id": "*"}))) == ["plain"]
    assert service.store.asked == [("acme\x1f", None), ("acme\x1f", None), ("", "\x1f")]


def test_the_filter_is_tested_in_a_worker_thread() -> None:
    seen: set[int] = set()

    def record(item: int) -> dict[str, Any]:
        seen.add(threading.get_ident())
        return {"user_id": "alice"}

    kept = run(sieve.keep(parse({"user_id": "alice"}), [1, 2, 3], record, sieve.deadline()))
    assert kept == [1, 2, 3]
    assert threading.get_ident() not in seen


def test_a_filter_past_its_time_limit_is_a_422() -> None:
    node = Cond("user_id", "eq", "alice")
    with pytest.raises(sieve.FilterTooSlow, match="narrow it") as caught:
        run(sieve.keep(node, [1, 2], lambda _: {"user_id": "alice"}, sieve.deadline(-1.0)))
    assert isinstance(caught.value, InvalidInput)  # answered 422
