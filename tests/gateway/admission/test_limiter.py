"""ClassLimiter and tenant policies: bounds, ordering, preemption, deadlines, fair share."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.admission.adaptive import AdaptiveLimit
from gateway.admission.limiter import ClassLimiter, Priority
from gateway.admission.tenants import AllOf, FairShare, RateLimit
from gateway.deadline import Deadline
from gateway.errors import Overloaded


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_limit_and_queue_bound_then_fast_refusal() -> None:
    async def scenario() -> tuple[list[str], float]:
        limiter = ClassLimiter("search", limit=2, queue_size=2, max_wait_s=5)
        outcomes: list[str] = []

        async def one() -> None:
            started = time.perf_counter()
            try:
                await limiter.acquire()
            except Overloaded as exc:
                outcomes.append(f"{exc.reason}:{time.perf_counter() - started:.3f}")
                return
            await asyncio.sleep(0.05)
            limiter.release()
            outcomes.append("ok")

        await asyncio.gather(*(one() for _ in range(10)))
        return outcomes, limiter.in_flight

    outcomes, in_flight = run(scenario())
    assert outcomes.count("ok") == 4
    refused = [o for o in outcomes if o != "ok"]
    assert len(refused) == 6
    assert all(o.startswith("queue_full:") and float(o.split(":")[1]) < 0.02 for o in refused)
    assert in_flight == 0


def test_waiters_run_by_priority_then_arrival() -> None:
    async def scenario() -> list[str]:
        limiter = ClassLimiter("ingest", limit=1, queue_size=10, max_wait_s=5)
        await limiter.acquire()
        order: list[str] = []

        async def one(name: str, priority: Priority) -> None:
            await limiter.acquire(priority)
            order.append(name)
            limiter.release()

        tasks = [asyncio.create_task(one(n, p)) for n, p in [
            ("bg", Priority.BACKGROUND), ("batch1", Priority.BATCH),
            ("ui1", Priority.INTERACTIVE), ("batch2", Priority.BATCH),
            ("ui2", Priority.INTERACTIVE)]]
        await asyncio.sleep(0.01)
        assert limiter.queue_depth == 5
        limiter.release()
        await asyncio.gather(*tasks)
        return order

    assert run(scenario()) == ["ui1", "ui2", "batch1", "batch2", "bg"]


def test_full_queue_sheds_the_least_urgent_waiter_for_an_interactive_arrival() -> None:
    async def scenario() -> tuple[list[str], str]:
        limiter = ClassLimiter("ingest", limit=1, queue_size=2, max_wait_s=5)
        await limiter.acquire()
        results: list[str] = []

        async def one(name: str, priority: Priority) -> None:
            try:
                await limiter.acquire(priority)
            except Overloaded as exc:
                results.append(f"{name}:{exc.reason}")
                return
            results.append(f"{name}:ok")
            limiter.release()

        tasks = [asyncio.create_task(one("bg", Priority.BACKGROUND)),
                 asyncio.create_task(one("batch", Priority.BATCH))]
        await asyncio.sleep(0.01)
        with pytest.raises(Overloaded) as same_priority:  # no one less urgent to displace
            await limiter.acquire(Priority.BACKGROUND)
        tasks.append(asyncio.create_task(one("ui", Priority.INTERACTIVE)))
        await asyncio.sleep(0.01)
        limiter.release()
        await asyncio.gather(*tasks)
        return results, same_priority.value.reason

    results, reason = run(scenario())
    assert reason == "queue_full"
    assert results == ["bg:preempted", "ui:ok", "batch:ok"]


def test_queue_wait_is_bounded_by_max_wait_and_by_the_deadline() -> None:
    async def scenario() -> tuple[str, float, str, float, str | None]:
        limiter = ClassLimiter("search", limit=1, queue_size=4, max_wait_s=0.1)
        await limiter.acquire()
        started = time.perf_counter()
        with pytest.raises(Overloaded) as waited:
            await limiter.acquire()
        waited_s = time.perf_counter() - started
        deadline = Deadline.after(0.03)
        started = time.perf_counter()
        with pytest.raises(Overloaded) as expired:
            await limiter.acquire(deadline=deadline)
        return (waited.value.reason, waited_s, expired.value.reason,
                time.perf_counter() - started, deadline.dropped_at)

    reason, waited_s, expired_reason, expired_s, dropped_at = run(scenario())
    assert reason == "queue_timeout" and 0.09 < waited_s < 0.5
    assert expired_reason == "deadline" and expired_s < 0.09
    assert dropped_at == "queue"


def test_an_expired_deadline_is_refused_without_queueing() -> None:
    async def scenario() -> str:
        limiter = ClassLimiter("search", limit=4, queue_size=4, max_wait_s=1)
        with pytest.raises(Overloaded) as refused:
            await limiter.acquire(deadline=Deadline.after(-0.001))
        assert limiter.in_flight == 0
        return refused.value.reason

    assert run(scenario()) == "deadline"


def test_a_cancelled_waiter_gives_its_place_back() -> None:
    async def scenario() -> tuple[int, int]:
        limiter = ClassLimiter("search", limit=1, queue_size=1, max_wait_s=5)
        await limiter.acquire()
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        depth = limiter.queue_depth
        limiter.release()
        return depth, limiter.in_flight

    assert run(scenario()) == (0, 0)


def test_fair_share_stops_one_tenant_taking_every_place() -> None:
    async def scenario() -> tuple[list[str], str]:
        limiter = ClassLimiter("search", limit=2, queue_size=2, max_wait_s=5,
                               tenants=FairShare(2))
        reasons = []
        await limiter.acquire(tenant="greedy")
        await limiter.acquire(tenant="greedy")
        for _ in range(2):
            try:
                await limiter.acquire(tenant="greedy")
            except Overloaded as exc:
                reasons.append(exc.reason)
        other = asyncio.create_task(limiter.acquire(tenant="polite"))
        await asyncio.sleep(0.01)
        limiter.release("greedy")
        await other
        return reasons, "admitted"

    reasons, polite = run(scenario())
    assert reasons == ["tenant_share", "tenant_share"]
    assert polite == "admitted"


def test_disabled_limiter_counts_but_never_refuses() -> None:
    async def scenario() -> int:
        limiter = ClassLimiter("search", limit=1, queue_size=0, max_wait_s=0, enabled=False)
        for _ in range(50):
            await limiter.acquire()
        return limiter.in_flight

    assert run(scenario()) == 50


def test_rate_limit_and_all_of_undo_partial_grants() -> None:
    share = FairShare(10)
    policy = AllOf([share, RateLimit(rate=1.0, burst=2)])
    assert policy.admit("t") is None
    assert policy.admit("t") is None
    assert policy.admit("t") == "tenant_rate"
    assert share._held["t"] == 2  # the refused third request holds nothing


def test_adaptive_limit_shrinks_fast_and_grows_slowly() -> None:
    limit = AdaptiveLimit(maximum=10, target_s=0.1, minimum=2, window=4)
    for _ in range(4):
        limit.observe(0.5, saturated=True)
    assert limit.limit == 8  # over target: -20%
    for _ in range(3):
        for _ in range(4):
            limit.observe(0.5, saturated=True)
    assert limit.limit == 3
    for _ in range(8):
        limit.observe(0.5, saturated=True)
    assert limit.limit == 2  # never below the minimum
    for _ in range(4):
        limit.observe(0.01, saturated=False)
    assert limit.limit == 2  # fast, but the limit was never reached: no reason to grow
    for _ in range(4):
        limit.observe(0.01, saturated=True)
    assert limit.limit == 3  # +1
    for _ in range(4):
        limit.observe(0.08, saturated=True)
    assert limit.limit == 3  # between 70% and 100% of the target: hold


def test_a_shrunk_limit_holds_waiters_until_running_work_drains() -> None:
    async def scenario() -> list[tuple[int, int, int]]:
        limiter = ClassLimiter("search", limit=4, queue_size=8, max_wait_s=5,
                               adaptive=AdaptiveLimit(maximum=4, target_s=0.1, window=1))
        for _ in range(4):
            await limiter.acquire()
        waiters = [asyncio.create_task(limiter.acquire()) for _ in range(3)]
        await asyncio.sleep(0.01)
        seen = []
        limiter.release(service_s=1.0)  # slow: limit 4 -> 3, the slot is not handed on
        await asyncio.sleep(0.01)
        seen.append((limiter.limit, limiter.in_flight, limiter.queue_depth))
        limiter.release(service_s=1.0)  # 3 -> 2
        await asyncio.sleep(0.01)
        seen.append((limiter.limit, limiter.in_flight, limiter.queue_depth))
        limiter.release(service_s=0.01)  # fast and saturated: 2 -> 3, two waiters admitted
        await asyncio.sleep(0.01)
        seen.append((limiter.limit, limiter.in_flight, limiter.queue_depth))
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        return seen

    assert run(scenario()) == [(3, 3, 3), (2, 2, 3), (3, 3, 1)]
