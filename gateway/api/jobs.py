"""``/v1/jobs``: start a consolidation job and follow it.

A job for one user needs a write key of that user's tenant. A job over every user (no
``user_id``) and the job list need an admin key, and stay within its tenant: its users, its
jobs; only an operator key runs a job over every tenant (and ``prune``, the retention job)
and sees every tenant's jobs. Asking for a job equal to a pending one (same kind, user or
tenant) returns that job (200) instead of a second; a tenant holding
``MEMORY_JOBS_MAX_PENDING`` pending jobs gets 429 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel

from gateway.api.deps import AdminCaller, Caller, Writer, gateway_state
from gateway.api.errors import COMMON_ERRORS, error_responses
from gateway.api.events import event_id as job_id
from gateway.api.schemas import Request as RequestModel
from gateway.api.schemas import ScopeId
from gateway.auth.principal import KeyScope, Principal
from gateway.auth.scope import TenantScope, tenant_of
from gateway.errors import Forbidden, InvalidInput, NotFound, Overloaded
from gateway.jobs.runner import SERVICE_KINDS, JobRunner
from gateway.settings import Settings
from gateway.store.types import Job

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=error_responses(*COMMON_ERRORS))
MAX_LISTED_JOBS = 100


class JobIn(RequestModel):
    # gateway.jobs.runner.KINDS, and SERVICE_KINDS (operator keys only)
    kind: Literal["compress", "expire", "merge", "prune"]
    user_id: ScopeId | None = None  # None: every user of the key's tenant (admin keys only)


class JobOut(BaseModel):
    id: str
    kind: str
    user_id: str | None  # the public id, within ``tenant``
    tenant: str | None  # whose users it works on; None: every tenant's (the service's)
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


def _tenant(job: Job) -> str | None:
    if job.tenant is not None:
        return job.tenant
    return tenant_of(job.user_id) if job.user_id is not None else None


def job_out(job: Job) -> JobOut:
    tenant = _tenant(job)
    user = job.user_id
    if user is not None and tenant is not None:
        user = TenantScope(tenant).public(user)
    return JobOut(id=job.id, kind=job.kind, user_id=user, tenant=tenant, status=job.status,
                  attempts=job.attempts, progress=job.progress, error=job.error,
                  created_at=job.created_at, updated_at=job.updated_at,
                  finished_at=job.finished_at)


def visible(job: Job, caller: Principal) -> bool:
    """The operator sees every job; a key sees its own user's, an admin key its tenant's."""
    if caller.operator:
        return True
    if job.user_id is not None:
        return caller.users.owns(job.user_id)
    return caller.allows(KeyScope.ADMIN) and job.tenant == caller.tenant


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             responses={**error_responses(400, 413),
                        200: {"model": JobOut, "description": "An equal job was pending "
                              "already: that job, nothing new queued"}})
async def start_job(body: JobIn, request: Request, response: Response, runner: Runner,
                    caller: Writer) -> JobOut:
    job, created = await enqueue(body, caller, runner, gateway_state(request).settings)
    if not created:
        response.status_code = status.HTTP_200_OK
    return job_out(job)


async def enqueue(body: JobIn, caller: Principal, runner: JobRunner,
                  settings: Settings) -> tuple[Job, bool]:
    """Queue the job the caller may start (or find the equal pending one): the job and
    whether it is new. The API's and the web console's one way to start a job."""
    if body.kind in SERVICE_KINDS:
        if not caller.operator:
            raise Forbidden(f"a '{body.kind}' job works on the whole service; it needs an "
                            "operator key")
        if body.user_id is not None:
            raise InvalidInput([{"loc": ["body", "user_id"], "type": "value_error",
                                 "msg": f"a '{body.kind}' job takes no 'user_id'"}])
    if body.user_id is None and not caller.allows(KeyScope.ADMIN):
        raise Forbidden("a job over every user needs an admin key; give a 'user_id'")
    user = caller.users.internal(body.user_id) if body.user_id is not None else None
    # over every user: the operator's spans every tenant, an admin's its own tenant
    tenant = None if caller.operator else caller.tenant
    enqueued = await runner.enqueue(body.kind, user, tenant,
                                    max_pending=settings.jobs_max_pending)
    if enqueued.job is None:
        raise Overloaded(f"this tenant has {settings.jobs_max_pending} pending jobs (the "
                         "limit, MEMORY_JOBS_MAX_PENDING); retry when one has finished",
                         retry_after=max(1, round(settings.jobs_lease_s)),
                         reason="jobs_pending")
    return enqueued.job, enqueued.created


@router.get("/{id}", response_model=JobOut, responses=error_responses(404))
async def get_job(job: Annotated[str, Depends(job_id)], runner: Runner,
                  caller: Caller) -> JobOut:
    found = await runner.jobs.get_job(job)
    if found is None or not visible(found, caller):
        raise NotFound(f"job {job} not found")
    return job_out(found)


@router.get("", response_model=list[JobOut])
async def list_jobs(runner: Runner, caller: AdminCaller,
                    limit: Annotated[int, Query(ge=1, le=MAX_LISTED_JOBS)] = 20) -> list[JobOut]:
    """The newest jobs: the tenant's for an admin key, every tenant's for the operator."""
    tenant = None if caller.operator else caller.tenant
    return [job_out(job) for job in await runner.jobs.recent_jobs(limit, tenant)]
