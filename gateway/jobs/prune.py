"""The ``prune`` job: retention for what is kept only for a while.

Finished jobs, finished ingest events and the history of deleted memories grow with every
request; nothing else ever removes them. A scheduled ``prune`` (every
``MEMORY_PRUNE_INTERVAL_S``) drops those older than their ``MEMORY_RETENTION_*_DAYS``; a live
memory's history stays whatever its age. It works on the whole store, not user by user.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.memory.clock import time_text
from gateway.store.base import Store
from gateway.store.types import PruneBefore, Pruned

DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Days each kind of row is kept (0: forever)."""

    jobs_days: float = 30.0
    events_days: float = 30.0
    history_days: float = 90.0

    def cutoffs(self, now: datetime) -> PruneBefore:
        def before(days: float) -> str | None:
            if days <= 0:
                return None
            return time_text(now - timedelta(seconds=days * DAY_S))

        return PruneBefore(before(self.jobs_days), before(self.events_days),
                           before(self.history_days))


async def prune(store: Store, policy: RetentionPolicy, now: datetime) -> Pruned:
    return await store.prune(policy.cutoffs(now))
