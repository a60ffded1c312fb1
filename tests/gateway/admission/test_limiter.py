"""ClassLimiter and tenant policies: bounds, ordering, preemption, deadlines, fair share."""

from __future__ import annotations

import asyncio

import pytest
from support import until

from gateway.admission.adaptive import AdaptiveLimit
from gateway.admission.limiter import ClassLimiter, Priority
from gateway.admission.tenants import AllOf, FairShare, RateLimit
from gateway.deadline import Deadline
from gateway.errors import Overloaded


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_limit_and_queue_bound_then_fast_refusal() -> None:
    """Two run, two wait, six are refused at once: while the two still hold their slots."""

    async def scenario() -> tuple[list[str], int]:
        limiter = ClassLimiter("search", limit=2, queue_size=2, max_wait_s=5)
        outcomes: list[str] = []
        wall = asyncio.Event()  # the admitted hold their slots until the test lets them go
        released = 0

        async def one() -> None:
            nonlocal released
            try:
                await limiter.acquire()
            except Overloaded as exc:
                outcomes.append(f"{exc.reason} after {released} releases")
                return
            await wall.wait()
            released += 1
            limiter.release()
            outcomes.append("ok")

        tasks = [asyncio.create_task(one()) for _ in range(10)]
        await until(lambda: len(outcomes) == 6, "six refusals")
        assert (limiter.in_flight, limiter.queue_depth) == (2, 2)
        wall.set()
        await asyncio.gather(*tasks)
        return outcomes, limiter.in_flight

    outcomes, in_flight = run(scenario())
    assert outcomes == ["queue_full after 0 releases"] * 6 + ["ok"] * 4
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
        await until(lambda: limiter.queue_depth == 5, "five waiters")
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
        await until(lambda: limiter.queue_depth == 2, "two waiters")
        with pytest.raises(Overloaded) as same_priority:  # no one less urgent to displace
            await limiter.acquire(Priority.BACKGROUND)
        tasks.append(asyncio.create_task(one("ui", Priority.INTERACTIVE)))
        await until(lambda: results == ["bg:preempted"], "the background waiter's eviction")
        limiter.release()
        await asyncio.gather(*tasks)
        return results, same_priority.value.reason

    results, reason = run(scenario())
    assert reason == "queue_full"
    assert results == ["bg:preempted", "ui:ok", "batch:ok"]


def test_queue_wait_is_bounded_by_max_wait_and_by_the_deadline() -> None:
    """Nobody releases the slot here, so only the bound can end each wait: the maximum wait
    (0.1 s) for the first, the request's deadline (0.03 s, under an hour's maximum) for the
    second. The outer ``wait_for`` turns a wait that nothing ends into a failure."""

    async def scenario() -> tuple[str, float, int, str, str | None, bool, int]:
        loop = asyncio.get_running_loop()
        limiter = ClassLimiter("search", limit=1, queue_size=4, max_wait_s=0.1)
        await limiter.acquire()
        started = loop.time()
        with pytest.raises(Overloaded) as waited:
            await asyncio.wait_for(limiter.acquire(), 60)
        waited_s, depth = loop.time() - started, limiter.queue_depth
        patient = ClassLimiter("search", limit=1, queue_size=4, max_wait_s=3600)
        await patient.acquire()
        deadline = Deadline.after(0.03)
        with pytest.raises(Overloaded) as expired:
            await asyncio.wait_for(patient.acquire(deadline=deadline), 60)
        return (waited.value.reason, waited_s, depth, expired.value.reason,
                deadline.dropped_at, deadline.expired, patient.queue_depth)

    reason, waited_s, depth, expired_reason, dropped_at, expired, left = run(scenario())
    assert reason == "queue_timeout" and waited_s >= 0.1 - 0.01 and depth == 0
    assert expired_reason == "deadline" and dropped_at == "queue" and expired and left == 0


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
        await until(lambda: limiter.queue_depth == 1, "the waiter to queue")
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
        await until(lambda: limiter.queue_depth == 1, "the polite tenant to queue")
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
        await until(lambda: limiter.queue_depth == 3, "three waiters")
        seen = []
        limiter.release(service_s=1.0)  # slow: limit 4 -> 3, the slot is not handed on
        await asyncio.sleep(0)  # a waiter handed a slot runs its next step
        seen.append((limiter.limit, limiter.in_flight, limiter.queue_depth))
        limiter.release(service_s=1.0)  # 3 -> 2
        await asyncio.sleep(0)  # a waiter handed a slot runs its next step
        seen.append((limiter.limit, limiter.in_flight, limiter.queue_depth))
        limiter.release(service_s=0.01)  # fast and saturated: 2 -> 3, two waiters admitted
        await asyncio.sleep(0)  # a waiter handed a slot runs its next step
        seen.append((limiter.limit, limiter.in_flight, limiter.queue_depth))
        for task in waiters:
            task.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        return seen

    assert run(scenario()) == [(3, 3, 3), (2, 2, 3), (3, 3, 1)]
