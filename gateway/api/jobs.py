"""``/v1/jobs``: start a consolidation job and follow it.

A job for one user needs a write key of that user's tenant; a job over every user (no
``user_id``) and the job list need an admin key, since they cross users.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel

from gateway.api.deps import AdminCaller, Caller, Writer, gateway_state
from gateway.api.errors import COMMON_ERRORS, error_responses
from gateway.api.events import event_id as job_id
from gateway.api.schemas import Request as RequestModel
from gateway.api.schemas import ScopeId
from gateway.auth.principal import KeyScope, Principal
from gateway.errors import Forbidden, NotFound
from gateway.jobs.runner import JobRunner
from gateway.store.types import Job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=error_responses(*COMMON_ERRORS))
MAX_LISTED_JOBS = 100


class JobIn(RequestModel):
    kind: Literal["compress", "expire", "merge"]  # gateway.jobs.runner.KINDS
    user_id: ScopeId | None = None  # None: every user (admin keys only)


class JobOut(BaseModel):
    id: str
    kind: str
    user_id: str | None
    status: Literal["queued", "running", "done", "failed"]
    attempts: int
    # users_done, skipped_users, and the kind's counts: merge: memories, merged; compress:
    # memories, summaries, archived; expire: expired
    progress: dict[str, Any]
    error: str | None
    created_at: str
    updated_at: str
    finished_at: str | None


async def get_runner(request: Request) -> JobRunner:
    return gateway_state(request).jobs


Runner = Annotated[JobRunner, Depends(get_runner)]


def _out(job: Job, caller: Principal) -> JobOut:
    user = job.user_id
    if user is not None and caller.users.owns(user):
        user = caller.users.public(user)
    return JobOut(id=job.id, kind=job.kind, user_id=user, status=job.status,
                  attempts=job.attempts, progress=job.progress, error=job.error,
                  created_at=job.created_at, updated_at=job.updated_at,
                  finished_at=job.finished_at)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             responses=error_responses(400, 413))
async def start_job(body: JobIn, runner: Runner, caller: Writer) -> JobOut:
    if body.user_id is None and not caller.allows(KeyScope.ADMIN):
        raise Forbidden("a job over every user needs an admin key; give a 'user_id'")
    user = caller.users.internal(body.user_id) if body.user_id is not None else None
    return _out(await runner.submit(body.kind, user), caller)


@router.get("/{id}", response_model=JobOut, responses=error_responses(404))
async def get_job(job: Annotated[str, Depends(job_id)], runner: Runner,
                  caller: Caller) -> JobOut:
    found = await runner.jobs.get_job(job)
    visible = found is not None and (
        caller.users.owns(found.user_id) if found.user_id is not None
        else caller.allows(KeyScope.ADMIN))
    if found is None or not visible:
        raise NotFound(f"job {job} not found")
    return _out(found, caller)


@router.get("", response_model=list[JobOut])
async def list_jobs(runner: Runner, caller: AdminCaller,
                    limit: Annotated[int, Query(ge=1, le=MAX_LISTED_JOBS)] = 20) -> list[JobOut]:
    return [_out(job, caller) for job in await runner.jobs.recent_jobs(limit)]
