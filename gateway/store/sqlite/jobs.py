"""The job table in SQLite: consolidation jobs as a durable state machine with leases.

``claim`` takes a queued job, or a running one whose lease expired (its process died), in one
atomic update and bumps ``attempts``; that count is the job's fencing token: a checkpoint or a
finish from an older claim matches no row, so two workers can never both advance one job.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from gateway.store.types import Job, JobStatus

_FIELDS = ("id, kind, user_id, status, attempts, lease_until, cursor, progress, error, "
           "created_at, updated_at, finished_at")


def _job(row: sqlite3.Row | None) -> Job | None:
    if row is None:
        return None
    return Job(row["id"], row["kind"], row["user_id"], row["status"], row["attempts"],
               row["lease_until"], row["cursor"], json.loads(row["progress"]), row["error"],
               row["created_at"], row["updated_at"], row["finished_at"])


def create(conn: sqlite3.Connection, job_id: str, kind: str, user_id: str | None,
           now: str) -> Job:
    job = _job(conn.execute(
        f"INSERT INTO jobs (id, kind, user_id, status, created_at, updated_at) "
        f"VALUES (?, ?, ?, 'queued', ?, ?) RETURNING {_FIELDS}",
        (job_id, kind, user_id, now, now)).fetchone())
    assert job is not None  # RETURNING gives the inserted row
    return job


def get(conn: sqlite3.Connection, job_id: str) -> Job | None:
    return _job(conn.execute(f"SELECT {_FIELDS} FROM jobs WHERE id = ?", (job_id,)).fetchone())


def recent(conn: sqlite3.Connection, limit: int) -> list[Job]:
    rows = conn.execute(f"SELECT {_FIELDS} FROM jobs ORDER BY created_at DESC LIMIT ?",
                        (limit,))
    return [job for job in map(_job, rows) if job is not None]


def pending(conn: sqlite3.Connection, kind: str, user_id: str | None) -> bool:
    return conn.execute(
        "SELECT 1 FROM jobs WHERE kind = ? AND user_id IS ? "
        "AND status IN ('queued', 'running') LIMIT 1", (kind, user_id)).fetchone() is not None


def claim(conn: sqlite3.Connection, now: str, lease_until: str) -> Job | None:
    return _job(conn.execute(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = ?, "
        "updated_at = ? WHERE id = (SELECT id FROM jobs WHERE status = 'queued' OR "
        "(status = 'running' AND lease_until < ?) ORDER BY created_at LIMIT 1) "
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


def next_user(conn: sqlite3.Connection, after: str) -> str | None:
    """The first user (internal id) after ``after`` in id order that has memories."""
    return conn.execute(
        "SELECT min(user_id) FROM memories WHERE user_id > ?", (after,)).fetchone()[0]
