"""The job table in SQLite: consolidation jobs as a durable state machine with leases.

``claim`` takes a queued job, or a running one whose lease expired (its process died), in one
atomic update and bumps ``attempts``; that count is the job's fencing token: a checkpoint or a
finish from an older claim matches no row, so two workers can never both advance one job.

Queued jobs are taken service-wide ones first (the schedule's expiry, prune), then the oldest
job of the tenant served least recently, so tenants take turns and one tenant's queue never
starves the others. ``enqueue`` returns an equal pending job instead of a second one
and refuses past a tenant's pending limit, in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from gateway.store.types import Enqueued, Job, JobStatus, UserRange

_FIELDS = ("id, kind, user_id, status, attempts, lease_until, cursor, progress, error, "
           "created_at, updated_at, finished_at, tenant")
_PENDING = "status IN ('queued', 'running')"
# The same work: same kind, same user, or for no user the same tenant (or every tenant).
_SAME = "kind = ? AND user_id IS ? AND (user_id IS NOT NULL OR tenant IS ?)"
# When a candidate's tenant was last served (its latest claimed job's last change; NULL:
# never): the least recently served tenant goes first.
_SERVED = ("SELECT max(s.updated_at) FROM jobs AS s WHERE s.tenant IS c.tenant "
           "AND s.attempts > 0 AND s.id != c.id")


def _job(row: sqlite3.Row | None) -> Job | None:
    if row is None:
        return None
    return Job(row["id"], row["kind"], row["user_id"], row["status"], row["attempts"],
               row["lease_until"], row["cursor"], json.loads(row["progress"]), row["error"],
               row["created_at"], row["updated_at"], row["finished_at"], row["tenant"])


def create(conn: sqlite3.Connection, job_id: str, kind: str, user_id: str | None,
           now: str, tenant: str | None) -> Job:
    job = _job(conn.execute(
        f"INSERT INTO jobs (id, kind, user_id, tenant, status, created_at, updated_at) "
        f"VALUES (?, ?, ?, ?, 'queued', ?, ?) RETURNING {_FIELDS}",
        (job_id, kind, user_id, tenant, now, now)).fetchone())
    assert job is not None  # RETURNING gives the inserted row
    return job


def enqueue(conn: sqlite3.Connection, job_id: str, kind: str, user_id: str | None, now: str,
            tenant: str | None, max_pending: int | None) -> Enqueued:
    """Inside one write transaction: the equal pending job, else a new one if the tenant
    holds fewer than ``max_pending`` pending jobs (None: no limit)."""
    equal = _job(conn.execute(
        f"SELECT {_FIELDS} FROM jobs WHERE {_SAME} AND {_PENDING} ORDER BY created_at LIMIT 1",
        (kind, user_id, tenant)).fetchone())
    if equal is not None:
        return Enqueued(equal, created=False)
    if max_pending is not None and conn.execute(
            f"SELECT count(*) FROM jobs WHERE tenant IS ? AND {_PENDING}",
            (tenant,)).fetchone()[0] >= max_pending:
        return Enqueued(None, created=False)
    return Enqueued(create(conn, job_id, kind, user_id, now, tenant), created=True)


def get(conn: sqlite3.Connection, job_id: str) -> Job | None:
    return _job(conn.execute(f"SELECT {_FIELDS} FROM jobs WHERE id = ?", (job_id,)).fetchone())


def recent(conn: sqlite3.Connection, limit: int, tenant: str | None) -> list[Job]:
    if tenant is None:
        rows = conn.execute(f"SELECT {_FIELDS} FROM jobs ORDER BY created_at DESC LIMIT ?",
                            (limit,))
    else:
        rows = conn.execute(f"SELECT {_FIELDS} FROM jobs WHERE tenant = ? "
                            "ORDER BY created_at DESC LIMIT ?", (tenant, limit))
    return [job for job in map(_job, rows) if job is not None]


def pending(conn: sqlite3.Connection, kind: str, user_id: str | None,
            tenant: str | None) -> bool:
    return conn.execute(f"SELECT 1 FROM jobs WHERE {_SAME} AND {_PENDING} LIMIT 1",
                        (kind, user_id, tenant)).fetchone() is not None


def claim(conn: sqlite3.Connection, now: str, lease_until: str) -> Job | None:
    return _job(conn.execute(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = ?, "
        "updated_at = ? WHERE id = (SELECT id FROM jobs AS c WHERE status = 'queued' OR "
        "(status = 'running' AND lease_until < ?) ORDER BY tenant IS NOT NULL, "
        f"({_SERVED}) NULLS FIRST, created_at LIMIT 1) "
        f"RETURNING {_FIELDS}", (lease_until, now, now)).fetchone())


def checkpoint(conn: sqlite3.Connection, job: Job, cursor: str, progress: dict[str, Any],
               now: str, lease_until: str) -> bool:
    return conn.execute(
        "UPDATE jobs SET cursor = ?, progress = ?, lease_until = ?, updated_at = ? "
        "WHERE id = ? AND attempts = ? AND status = 'running'",
        (cursor, json.dumps(progress), lease_until, now, job.id, job.attempts),
    ).rowcount == 1


def finish(conn: sqlite3.Connection, job: Job, status: JobStatus, progress: dict[str, Any],
           now: str, error: str | None) -> bool:
    return conn.execute(
        "UPDATE jobs SET status = ?, progress = ?, error = ?, lease_until = NULL, "
        "updated_at = ?, finished_at = ? WHERE id = ? AND attempts = ? "
        "AND status = 'running'",
        (status, json.dumps(progress), error, now, now, job.id, job.attempts),
    ).rowcount == 1


def next_user(conn: sqlite3.Connection, after: str, within: UserRange) -> str | None:
    """The first user (internal id) after ``after`` in id order that has memories, among
    ``within``'s ids (a prefix is a key range of the user index)."""
    if not within.prefix and within.without is None:
        return conn.execute(
            "SELECT min(user_id) FROM memories WHERE user_id > ?", (after,)).fetchone()[0]
    sql, args = "SELECT user_id FROM memories WHERE user_id > ?", [after]
    if within.prefix:
        end = within.prefix[:-1] + chr(ord(within.prefix[-1]) + 1)
        sql += " AND user_id >= ? AND user_id < ?"
        args += [within.prefix, end]
    if within.without is not None:
        sql += " AND instr(user_id, ?) = 0"
        args.append(within.without)
    row = conn.execute(sql + " ORDER BY user_id LIMIT 1", args).fetchone()
    return row[0] if row is not None else None
