"""The job table in PostgreSQL: consolidation jobs as a durable state machine with leases.

As the SQLite backend's ``jobs`` (``attempts`` is the fencing token; service-wide jobs first,
then tenants in turns). A claim skips rows another replica holds locked, and ``enqueue``
takes a transaction-scoped advisory lock, so its check-then-insert is one step across
replicas too.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.store.postgres.rows import Conn, fetch_all, fetch_one, rowcount
from gateway.store.types import Enqueued, Job, JobStatus, UserRange

ENQUEUE_LOCK = 0x6A6F6273  # pg_advisory_xact_lock key of enqueue_job

_FIELDS = ("id, kind, user_id, status, attempts, lease_until, cursor, progress, error, "
           "created_at, updated_at, finished_at, tenant")
_PENDING = "status IN ('queued', 'running')"
_SAME = ("kind = %s AND user_id IS NOT DISTINCT FROM %s "
         "AND (user_id IS NOT NULL OR tenant IS NOT DISTINCT FROM %s)")
_SERVED = ("SELECT max(s.updated_at) FROM jobs AS s WHERE s.tenant IS NOT DISTINCT FROM "
           "c.tenant AND s.attempts > 0 AND s.id <> c.id")


def _job(row: dict[str, Any] | None) -> Job | None:
    if row is None:
        return None
    return Job(row["id"], row["kind"], row["user_id"], row["status"], row["attempts"],
               row["lease_until"], row["cursor"], json.loads(row["progress"]), row["error"],
               row["created_at"], row["updated_at"], row["finished_at"], row["tenant"])


async def create(conn: Conn, job_id: str, kind: str, user_id: str | None, now: str,
                 tenant: str | None) -> Job:
    job = _job(await fetch_one(
        conn, "INSERT INTO jobs (id, kind, user_id, tenant, status, created_at, updated_at) "
        f"VALUES (%s, %s, %s, %s, 'queued', %s, %s) RETURNING {_FIELDS}",
        (job_id, kind, user_id, tenant, now, now)))
    assert job is not None  # RETURNING gives the inserted row
    return job


async def enqueue(conn: Conn, job_id: str, kind: str, user_id: str | None, now: str,
                  tenant: str | None, max_pending: int | None) -> Enqueued:
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (ENQUEUE_LOCK,))
    equal = _job(await fetch_one(
        conn, f"SELECT {_FIELDS} FROM jobs WHERE {_SAME} AND {_PENDING} "
        "ORDER BY created_at LIMIT 1", (kind, user_id, tenant)))
    if equal is not None:
        return Enqueued(equal, created=False)
    if max_pending is not None:
        row = await fetch_one(conn, "SELECT count(*) AS n FROM jobs WHERE tenant IS NOT "
                              f"DISTINCT FROM %s AND {_PENDING}", (tenant,))
        if row is not None and row["n"] >= max_pending:
            return Enqueued(None, created=False)
    return Enqueued(await create(conn, job_id, kind, user_id, now, tenant), created=True)


async def get(conn: Conn, job_id: str) -> Job | None:
    return _job(await fetch_one(conn, f"SELECT {_FIELDS} FROM jobs WHERE id = %s", (job_id,)))


async def recent(conn: Conn, limit: int, tenant: str | None) -> list[Job]:
    if tenant is None:
        rows = await fetch_all(conn, f"SELECT {_FIELDS} FROM jobs ORDER BY created_at DESC, "
                               "id DESC LIMIT %s", (limit,))
    else:
        rows = await fetch_all(conn, f"SELECT {_FIELDS} FROM jobs WHERE tenant = %s "
                               "ORDER BY created_at DESC, id DESC LIMIT %s", (tenant, limit))
    return [job for job in map(_job, rows) if job is not None]


async def pending(conn: Conn, kind: str, user_id: str | None, tenant: str | None) -> bool:
    return await fetch_one(conn, f"SELECT 1 FROM jobs WHERE {_SAME} AND {_PENDING} LIMIT 1",
                           (kind, user_id, tenant)) is not None


async def claim(conn: Conn, now: str, lease_until: str) -> Job | None:
    return _job(await fetch_one(
        conn, "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = %s, "
        "updated_at = %s WHERE id = (SELECT id FROM jobs AS c WHERE status = 'queued' OR "
        "(status = 'running' AND lease_until < %s) ORDER BY tenant IS NOT NULL, "
        f"({_SERVED}) NULLS FIRST, created_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
        f"RETURNING {_FIELDS}", (lease_until, now, now)))


async def checkpoint(conn: Conn, job: Job, cursor: str, progress: dict[str, Any], now: str,
                     lease_until: str) -> bool:
    return await rowcount(
        conn, "UPDATE jobs SET cursor = %s, progress = %s, lease_until = %s, updated_at = %s "
        "WHERE id = %s AND attempts = %s AND status = 'running'",
        (cursor, json.dumps(progress), lease_until, now, job.id, job.attempts)) == 1


async def finish(conn: Conn, job: Job, status: JobStatus, progress: dict[str, Any], now: str,
                 error: str | None) -> bool:
    return await rowcount(
        conn, "UPDATE jobs SET status = %s, progress = %s, error = %s, lease_until = NULL, "
        "updated_at = %s, finished_at = %s WHERE id = %s AND attempts = %s "
        "AND status = 'running'",
        (status, json.dumps(progress), error, now, now, job.id, job.attempts)) == 1


async def next_user(conn: Conn, after: str, within: UserRange) -> str | None:
    """The first user after ``after`` in id order that has memories, among ``within``'s."""
    sql, args = "SELECT user_id FROM memories WHERE user_id > %s", [after]
    if within.prefix:
        end = within.prefix[:-1] + chr(ord(within.prefix[-1]) + 1)
        sql += " AND user_id >= %s AND user_id < %s"
        args += [within.prefix, end]
    if within.without is not None:
        sql += " AND strpos(user_id, %s) = 0"
        args.append(within.without)
    row = await fetch_one(conn, sql + " ORDER BY user_id LIMIT 1", args)
    return row["user_id"] if row is not None else None
