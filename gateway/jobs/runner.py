"""Runs consolidation jobs in the gateway process: claim, work user by user, checkpoint.

One job at a time. Each user's work holds an ingest admission slot at background priority,
so interactive traffic goes first; a shed user is retried after ``Retry-After``. Inside it the
work runs in short slices that wait for client requests in flight (``gateway.jobs.pacing``).
After each user the cursor is committed with a renewed lease, and a user whose paced work
lasts long renews it meanwhile; a job whose process died is claimed again once its lease
expires (at the latest) and resumes after its cursor. Every kind is idempotent per user, so a
user redone after a crash changes nothing twice.

A job records the tenant whose users it works on: a job of one user, its user's tenant; a
tenant admin's job over "every user", that tenant's users only (the walk is restricted to the
tenant's user-id range); the operator's and the schedule's, every tenant's (None). ``prune``
works on the whole store at once (``gateway.jobs.prune``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.admission.controller import AdmissionController
from gateway.admission.limiter import Priority
from gateway.auth.scope import TenantScope, tenant_of
from gateway.errors import Conflict, GatewayError, Overloaded
from gateway.jobs.compress import CompressPolicy, Summariser, compress_user
from gateway.jobs.expire import expire_user
from gateway.jobs.merge import merge_user
from gateway.jobs.pacing import Pacer
from gateway.jobs.prune import RetentionPolicy, prune
from gateway.memory.clock import utc_later
from gateway.memory.dedup import DedupPolicy
from gateway.memory.ids import uuid7
from gateway.memory.service import MemoryService, utc_now
from gateway.metrics import Metrics
from gateway.store.base import Store
from gateway.store.types import EVERY_USER, Enqueued, Job

log = logging.getLogger("gateway.jobs")
IDLE_POLL_S = 5.0  # how often an idle runner looks for queued jobs and expired leases
MAX_ATTEMPTS = 3  # claims of one job before it is marked failed
MAX_CONFLICTS = 3  # tries of one user whose memories keep changing under the job
MAX_USER_FAILURES = 5  # failed tries of one user's work (not conflicts) before it is skipped
FAILURE_BACKOFF_S = 1.0  # doubled after each failure
LEASE_RENEWALS = 3  # per lease period while one user's work runs


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a kind's per-user work may use besides the service."""

    dedup: DedupPolicy
    compress: CompressPolicy = field(default_factory=CompressPolicy)
    summariser: Summariser = field(default_factory=Summariser)
    pacer: Pacer = field(default_factory=Pacer)  # slices the work, requests first


# A kind's work for one user returns a dataclass of counts, added up into the job's progress.
UserWork = Callable[[MemoryService, str, JobContext], Awaitable[Any]]
KINDS: dict[str, UserWork] = {
    "compress": lambda service, user, ctx: compress_user(service, user, ctx.compress,
                                                         ctx.summariser, ctx.pacer),
    "expire": lambda service, user, ctx: expire_user(service, user, ctx.pacer),
    "merge": lambda service, user, ctx: merge_user(service, user, ctx.dedup, ctx.pacer),
}


SERVICE_KINDS = ("prune",)  # work on the whole store at once, never per user or tenant


SCHEDULED_KINDS = ("expire", "merge", "compress")  # in the order the runner takes them


class JobRunner:
    def __init__(self, service: MemoryService, jobs: Store, policy: DedupPolicy, *,
                 admission: AdmissionController | None = None, metrics: Metrics | None = None,
                 lease_s: float = 60.0, interval_s: float = 0.0,
                 compress: CompressPolicy | None = None,
                 summariser: Summariser | None = None, pacer: Pacer | None = None,
                 retention: RetentionPolicy | None = None, prune_interval_s: float = 0.0,
                 ) -> None:
        self.service = service
        self.jobs = jobs
        self.policy = policy
        self.context = JobContext(policy, compress or CompressPolicy(),
                                  summariser or Summariser(), pacer or Pacer())
        self.admission = admission
        self.metrics = metrics
        self.lease_s = lease_s
        self.interval_s = interval_s  # 0: no scheduled jobs
        self.retention = retention or RetentionPolicy()
        self.prune_interval_s = prune_interval_s  # 0: no scheduled prune
        self._wake = asyncio.Event()

    async def submit(self, kind: str, user_id: str | None) -> Job:
        """Queue a job for the service (schedule, size trigger): never refused."""
        tenant = tenant_of(user_id) if user_id is not None else None
        job = await self.jobs.create_job(uuid7(), kind, user_id, utc_now(), tenant=tenant)
        self._wake.set()
        return job

    async def enqueue(self, kind: str, user_id: str | None, tenant: str | None, *,
                      max_pending: int | None) -> Enqueued:
        """Queue a client's job: an equal pending job is returned instead, and nothing is
        queued while the tenant holds ``max_pending`` pending jobs. ``tenant``: the tenant a
        job over every user is limited to (None: every tenant's); a user's own is implied."""
        if user_id is not None:
            tenant = tenant_of(user_id)
        enqueued = await self.jobs.enqueue_job(uuid7(), kind, user_id, utc_now(),
                                               tenant=tenant, max_pending=max_pending)
        if enqueued.created:
            self._wake.set()
        return enqueued

    async def work_forever(self) -> None:
        while True:
            self._wake.clear()
            job = await self.jobs.claim_job(utc_now(), utc_later(self.lease_s))
            if job is not None:
                try:
                    await self._run(job)
                except Exception as exc:  # a bug must not stop the runner; the job says why
                    log.exception("job %s failed", job.id)
                    await self.jobs.finish_job(job, "failed", job.progress, utc_now(),
                                           f"{type(exc).__name__}: {exc}")
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)

    async def schedule_forever(self) -> None:
        """Every ``interval_s``, one job of each kind over every user (expired memories go
        first, duplicates are merged before groups are compressed), unless one is queued or
        running already."""
        while self.interval_s > 0:
            await asyncio.sleep(self.interval_s)
            for kind in SCHEDULED_KINDS:
                if not await self.jobs.job_pending(kind, None):
                    await self.submit(kind, None)

    async def prune_forever(self) -> None:
        """Every ``prune_interval_s``, one ``prune`` job, unless one is pending already."""
        while self.prune_interval_s > 0:
            await asyncio.sleep(self.prune_interval_s)
            if not await self.jobs.job_pending("prune", None):
                await self.submit("prune", None)

    async def _run(self, job: Job) -> None:
        if job.attempts > MAX_ATTEMPTS:
            await self.jobs.finish_job(job, "failed", job.progress, utc_now(),
                                   f"gave up after {MAX_ATTEMPTS} attempts")
            self._count(job, "failed", 0.0)
            return
        started = time.perf_counter()
        if job.kind in SERVICE_KINDS:
            pruned = await prune(self.jobs, self.retention, datetime.now(UTC))
            await self.jobs.finish_job(job, "done", asdict(pruned), utc_now())
            self._count(job, "done", time.perf_counter() - started)
            return
        progress = {"users_done": 0, "skipped_users": 0, **job.progress}
        cursor = job.cursor
        work = KINDS[job.kind]
        while (user := await self._next_user(job, cursor)) is not None:
            renewing = asyncio.create_task(self._keep_lease(job, cursor, dict(progress)),
                                           name="job-lease")
            try:
                result = await self._user(work, user)
            finally:
                renewing.cancel()
            progress["users_done"] += 1
            if result is None:
                progress["skipped_users"] += 1
            else:
                for name, count in asdict(result).items():
                    progress[name] = progress.get(name, 0) + count
                if self.metrics is not None and job.kind == "merge":
                    self.metrics.jobs_merged.inc(result.merged)
                if self.metrics is not None and job.kind == "compress":
                    self.metrics.jobs_archived.inc(result.archived)
            cursor = user
            if not await self.jobs.checkpoint_job(job, cursor, progress, utc_now(),
                                              utc_later(self.lease_s)):
                log.warning("job %s was claimed by another runner; stopping here", job.id)
                return
        await self.jobs.finish_job(job, "done", progress, utc_now())
        self._count(job, "done", time.perf_counter() - started)

    async def _keep_lease(self, job: Job, cursor: str, progress: dict[str, Any]) -> None:
        """Renew the lease while one user's (paced, possibly long) work runs, so another
        runner does not take the job over meanwhile."""
        while True:
            await asyncio.sleep(self.lease_s / LEASE_RENEWALS)
            await self.jobs.checkpoint_job(job, cursor, progress, utc_now(),
                                           utc_later(self.lease_s))

    async def _next_user(self, job: Job, cursor: str) -> str | None:
        if job.user_id is not None:
            return job.user_id if cursor < job.user_id else None
        within = TenantScope(job.tenant).user_range if job.tenant is not None else EVERY_USER
        return await self.jobs.next_user(cursor, within)

    async def _user(self, work: UserWork, user: str) -> Any:
        """One user's work in an admission slot; None when it kept conflicting with writes or
        kept failing (Triton down or too slow, the store busy): the user is skipped this run,
        counted in ``skipped_users``, and the next run tries again."""
        conflicts = failures = 0
        while True:
            try:
                async with self._slot():
                    try:
                        return await work(self.service, user, self.context)
                    finally:
                        self.context.pacer.pause()  # what follows is not the user's work
            except Overloaded as exc:
                await asyncio.sleep(exc.retry_after or 1)
            except Conflict:
                conflicts += 1
                if conflicts >= MAX_CONFLICTS:
                    return None
            except GatewayError as exc:  # e.g. the store is busy: try again a little later
                failures += 1
                if failures >= MAX_USER_FAILURES:
                    log.error("job work for a user failed %d times (%s); skipping the user "
                              "this run", failures, exc)
                    return None
                log.warning("job work for a user failed (%s); retrying", exc)
                await asyncio.sleep(FAILURE_BACKOFF_S * 2 ** (failures - 1))

    def _slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        if self.admission is None:
            return contextlib.nullcontext()
        return self.admission.slot("ingest", Priority.BACKGROUND)

    def _count(self, job: Job, status: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.jobs.labels(job.kind, status).inc()
            if status == "done":
                self.metrics.job_seconds.labels(job.kind).observe(seconds)
