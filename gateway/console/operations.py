"""Operations pages: consolidation jobs (queue, progress, run one), model versions (active,
migration progress, activate) and the service at a glance. Each through the API's own rules:
``gateway.api.jobs.enqueue`` and ``visible`` for jobs, ``gateway.api.admin.check_admin`` for
model versions (operators only), the operator scope for the service's metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from gateway.api.admin import ActivateIn, check_admin
from gateway.api.deps import gateway_state
from gateway.api.events import event_id
from gateway.api.jobs import JobIn, enqueue, job_out, visible
from gateway.auth.principal import KeyScope, Principal
from gateway.console.admitted import admitted
from gateway.console.auth import Form, OperatorViewer, Reader, Writer
from gateway.console.forms import optional_id
from gateway.console.glance import read
from gateway.console.render import PREFIX, page
from gateway.console.routing import ConsoleRoute
from gateway.jobs.runner import KINDS, SERVICE_KINDS

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)
LISTED_JOBS = 50


@router.get("/jobs")
async def jobs(request: Request, caller: Reader,
               job: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    """The newest jobs (admin keys: the tenant's; the operator: every tenant's), one job's
    progress, and the form that starts one."""
    runner = gateway_state(request).jobs
    shown = None
    if job:
        found = await runner.jobs.get_job(await event_id(job))
        shown = job_out(found) if found is not None and visible(found, caller) else None
    recent = None
    if caller.allows(KeyScope.ADMIN):
        tenant = None if caller.operator else caller.tenant
        recent = [job_out(j) for j in await runner.jobs.recent_jobs(LISTED_JOBS, tenant)]
    kinds = [k for k in (*KINDS, *SERVICE_KINDS) if caller.operator or k not in SERVICE_KINDS]
    return page(request, "jobs.html", {"job": shown, "asked": job, "recent": recent,
                                       "kinds": sorted(set(kinds)),
                                       "admin": caller.allows(KeyScope.ADMIN)})


@router.post("/jobs")
async def start_job(request: Request, caller: Writer, form: Form) -> Response:
    body = JobIn.model_validate({"kind": form.get("kind"),
                                 "user_id": optional_id(form.get("user_id"), "user_id")})
    async with admitted(request, caller, "admin"):
        job, _ = await enqueue(body, caller, gateway_state(request).jobs,
                               gateway_state(request).settings)
    return RedirectResponse(f"{PREFIX}/jobs?job={job.id}", status_code=303)


def _admin(request: Request, caller: Principal) -> None:
    check_admin(gateway_state(request).settings, caller,
                request.client.host if request.client else "")


@router.get("/models")
async def models(request: Request, caller: Reader) -> Response:
    _admin(request, caller)
    state = gateway_state(request)
    views: dict[str, Any] = {state.versions.model: await state.versions.view(),
                             state.reranker_versions.model: await state.reranker_versions.view(),
                             state.clip_versions.model: await state.clip_versions.view()}
    return page(request, "models.html", {"views": views})


@router.post("/models/activate")
async def activate(request: Request, caller: Reader, form: Form) -> Response:
    _admin(request, caller)
    state = gateway_state(request)
    body = ActivateIn.model_validate({"version": form.get("version")})
    async with admitted(request, caller, "admin"):
        if form.get("model") == state.reranker_versions.model:
            await state.reranker_versions.activate(body.version)
        elif form.get("model") == state.clip_versions.model:
            await state.clip_versions.activate(body.version)
        else:
            await state.versions.activate(body.version)
    return RedirectResponse(f"{PREFIX}/models", status_code=303)


@router.get("/service")
async def service(request: Request, caller: OperatorViewer) -> Response:
    return page(request, "service.html", {"glance": read(gateway_state(request).metrics.registry)})
