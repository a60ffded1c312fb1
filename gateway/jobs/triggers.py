"""The size trigger: a user whose stored memories pass ``MEMORY_JOBS_USER_SIZE`` gets a
consolidation job queued, without slowing the write that got it there.

A write only notes its users (a set update on the event loop, nothing awaited). A background
task takes the noted users, counts their memories on a store reader thread, and queues one job
per consolidation kind the runner knows (merge, then compress where it exists) for each user
over the threshold, unless such a job is already queued or running for that user, its tenant or
every user: jobs never pile up. A user queued once is queued again only after growing by another
``REARM_SHARE`` of the threshold, so a user who stays big after consolidation does not get a
job after every write. The re-arm marks live in memory: after a restart a big user is queued
once more on its next write.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable

from gateway.auth.scope import tenant_of
from gateway.jobs import runner as job_runner
from gateway.store.types import Job

log = logging.getLogger("gateway.jobs")
CONSOLIDATION_KINDS = ("merge", "compress")  # queued in this order, those the runner knows
REARM_SHARE = 0.5  # growth (share of the threshold) before a user is queued again


def consolidation_kinds() -> list[str]:
    """Looked up at run time, so a kind added to the runner later is picked up."""
    return [kind for kind in CONSOLIDATION_KINDS if kind in job_runner.KINDS]


class SizeTrigger:
    def __init__(self, runner: job_runner.JobRunner, threshold: int) -> None:
        self.runner = runner
        self.threshold = threshold  # memories a user may hold before a job; 0 = off
        self.checks = 0  # batches of noted users looked at (tests wait on it)
        self._noted: set[str] = set()
        self._next: dict[str, int] = {}  # user -> count at which it is queued again
        self._wake = asyncio.Event()

    def note(self, users: Iterable[str]) -> None:
        """Called by the write path after a commit: cheap, never waits."""
        if self.threshold <= 0:
            return
        self._noted.update(users)
        self._wake.set()

    async def watch_forever(self) -> None:
        while self.threshold > 0:
            await self._wake.wait()
            self._wake.clear()
            users, self._noted = self._noted, set()
            try:
                await self.check(users)
            except Exception:  # a failed check must not stop the trigger; the next write retries
                log.exception("size trigger check failed")
            self.checks += 1

    async def check(self, users: Iterable[str]) -> list[Job]:
        """Queue the jobs these users' sizes call for; returns the jobs queued."""
        counts = await self.runner.jobs.user_counts(sorted(set(users)))
        queued: list[Job] = []
        for user, count in sorted(counts.items()):
            if count < max(self.threshold, self._next.get(user, 0)):
                continue
            self._next[user] = count + math.ceil(self.threshold * REARM_SHARE)
            for kind in consolidation_kinds():
                if (await self.runner.jobs.job_pending(kind, user)
                        or await self.runner.jobs.job_pending(kind, None, tenant_of(user))
                        or await self.runner.jobs.job_pending(kind, None)):
                    continue
                queued.append(await self.runner.submit(kind, user))
                log.info("user passed %d memories (%d): %s job queued", self.threshold, count,
                         kind)
        return queued
