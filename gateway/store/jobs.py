"""The job table: consolidation jobs as a durable state machine with leases.

``claim`` takes a queued job, or a running one whose lease expired (its process died), in one
atomic update and bumps ``attempts``; that count is the job's fencing token: a checkpoint or a
finish from an older claim matches no row, so two workers can never both advance one job.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from gateway.store.sqlite import Store

JobStatus = Literal["queued", "running", "done", "failed"]
_FIELDS = ("id, kind, user_id, status, attempts, lease_until, cursor, progress, error, "
           "created_at, updated_at, finished_at")


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    kind: str
    user_id: str | None  # None: every user
    status: JobStatus
    attempts: int
    lease_until: str | None
    cursor: str  # the last user finished ('' = none yet)
    progress: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None


def _job(row: sqlite3.Row) -> Job:
    return Job(row["id"], row["kind"], row["user_id"], row["status"], row["attempts"],
               row["lease_until"], row["cursor"], json.loads(row["progress"]), row["error"],
               row["created_at"], row["updated_at"], row["finished_at"])


class JobStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, job_id: str, kind: str, user_id: str | None, now: str) -> Job:
        def work(conn: sqlite3.Connection) -> Job:
            row = conn.execute(
                f"INSERT INTO jobs (id, kind, user_id, status, created_at, updated_at) "
                f"VALUES (?, ?, ?, 'queued', ?, ?) RETURNING {_FIELDS}",
                (job_id, kind, user_id, now, now)).fetchone()
            return _job(row)

        return await self.store.run(self.store.transaction, work)

    async def get(self, job_id: str) -> Job | None:
        def work() -> Job | None:
            row = self.store.conn.execute(
                f"SELECT {_FIELDS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return None if row is None else _job(row)

        return await self.store.run(work)

    async def recent(self, limit: int) -> list[Job]:
        def work() -> list[Job]:
            rows = self.store.conn.execute(
                f"SELECT {_FIELDS} FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
            return [_job(r) for r in rows]

        return await self.store.run(work)

    async def pending(self, kind: str, user_id: str | None) -> bool:
        """Whether such a job is queued or running already (schedules do not pile up)."""
        def work() -> bool:
            row = self.store.conn.execute(
                "SELECT 1 FROM jobs WHERE kind = ? AND user_id IS ? "
                "AND status IN ('queued', 'running') LIMIT 1", (kind, user_id)).fetchone()
            return row is not None

        return await self.store.run(work)

    async def claim(self, now: str, lease_until: str) -> Job | None:
        """The oldest queued job, or a running one with an expired lease, now running."""

        def work(conn: sqlite3.Connection) -> Job | None:
            row = conn.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = ?, "
                "updated_at = ? WHERE id = (SELECT id FROM jobs WHERE status = 'queued' OR "
                "(status = 'running' AND lease_until < ?) ORDER BY created_at LIMIT 1) "
                f"RETURNING {_FIELDS}", (lease_until, now, now)).fetchone()
            return None if row is None else _job(row)

        return await self.store.run(self.store.transaction, work)

    async def checkpoint(self, job: Job, cursor: str, progress: dict[str, Any], now: str,
                         lease_until: str) -> bool:
        """Record a finished user and renew the lease; False if the claim was lost."""

        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "UPDATE jobs SET cursor = ?, progress = ?, lease_until = ?, updated_at = ? "
                "WHERE id = ? AND attempts = ? AND status = 'running'",
                (cursor, json.dumps(progress), lease_until, now, job.id, job.attempts),
            ).rowcount == 1

        return await self.store.run(self.store.transaction, work)

    async def finish(self, job: Job, status: JobStatus, progress: dict[str, Any], now: str,
                     error: str | None = None) -> bool:
        def work(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "UPDATE jobs SET status = ?, progress = ?, error = ?, lease_until = NULL, "
                "updated_at = ?, finished_at = ? WHERE id = ? AND attempts = ? "
                "AND status = 'running'",
                (status, json.dumps(progress), error, now, now, job.id, job.attempts),
            ).rowcount == 1

        return await self.store.run(self.store.transaction, work)

    async def next_user(self, after: str) -> str | None:
        """The first user (internal id) after ``after`` in id order that has memories."""

        def work() -> str | None:
            return self.store.conn.execute(
                "SELECT min(user_id) FROM memories WHERE user_id > ?", (after,)).fetchone()[0]

        return await self.store.run(work)
