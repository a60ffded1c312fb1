"""The app factory: settings in, a FastAPI app out; resources live in the lifespan, which
builds one ``GatewayState`` (``app.state.gateway``) step by step (``gateway.startup``)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from gateway.admission.controller import AdmissionController
from gateway.admission.middleware import Admission
from gateway.api import admin, events, health, jobs, memories
from gateway.api.body_deadline import BodyDeadline
from gateway.api.errors import COMMON_ERRORS, error_responses, install_error_handlers
from gateway.api.hosts import LoopbackHosts
from gateway.api.mem0.router import router as mem0_router
from gateway.api.middleware import BodyLimit, RequestMetrics
from gateway.api.security import (
    CORS_EXPOSED,
    CORS_HEADERS,
    CORS_METHODS,
    RequestContext,
)
from gateway.auth.authenticator import Authenticator
from gateway.auth.middleware import Authenticate
from gateway.memory.dedup import DedupPolicy
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.startup import Wiring, key_table, start_gateway


def freeze_heap(stack: AsyncExitStack) -> None:
    """Take what is alive after start-up (modules, models, the loaded index) out of the garbage
    collector's view, so a full collection (set off by a job's or a batch's allocations) scans
    only what came since: during make bench-jobs such pauses took 40-86 ms, and 1-4 ms frozen.
    Unfrozen at shutdown, so a process that makes many apps frees them."""
    gc.collect()
    gc.freeze()
    stack.callback(gc.unfreeze)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    authenticator = Authenticator(settings.keys_path, required=settings.auth_required,
                                  table=key_table(settings))
    # In-process background work takes slots through the state's admission.slot(...).
    admission = AdmissionController.from_settings(settings, metrics)
    wiring = Wiring(settings, metrics, admission, DedupPolicy.from_settings(settings),
                    authenticator)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Start (``gateway.startup``); a failed step, or shutdown, closes what was opened."""
        async with AsyncExitStack() as stack:
            app.state.gateway = await start_gateway(stack, wiring)
            freeze_heap(stack)
            yield

    app = FastAPI(
        title="Agent memory gateway",
        version="0.1.0",
        summary="Long-term memory for LLM agents: add and search memories by meaning.",
        lifespan=lifespan,
        # MEMORY_DOCS=false: no interactive docs and no schema (docs/operations.md)
        docs_url="/docs" if settings.docs else None,
        redoc_url="/redoc" if settings.docs else None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    install_error_handlers(app)
    app.include_router(memories.router)
    app.include_router(events.router)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    # the Mem0 Platform-compatible API; its errors are {"detail"} answers like ours
    app.include_router(mem0_router, responses=error_responses(*COMMON_ERRORS))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Outside BodyLimit so a shed request is refused before its body is read; inside
    # RequestMetrics so the 429s are counted like any other answer.
    # X-Tenant-Id and user_id name the tenant only while authentication is off.
    app.add_middleware(Admission, controller=admission,
                       trust_client=not settings.auth_required)
    # Outside Admission, so the body's clock starts at arrival, a queue wait included.
    app.add_middleware(BodyDeadline, timeout_s=settings.body_timeout_s,
                       min_bytes_per_s=settings.body_min_bytes_per_s,
                       grace_s=settings.body_grace_s)
    # Outside Admission so shedding counts the key's tenant, and a bad or missing key takes no
    # slot and has its body left unread.
    app.add_middleware(Authenticate, authenticator=authenticator)
    if not settings.auth_required:  # DNS rebinding: the anonymous caller is an admin here
        app.add_middleware(LoopbackHosts, allowed=settings.allowed_hosts)
    app.add_middleware(RequestMetrics, metrics=metrics)
    if settings.cors_allow_origins:  # off unless origins are listed
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_allow_origins,
                           allow_methods=CORS_METHODS, allow_headers=CORS_HEADERS,
                           expose_headers=CORS_EXPOSED)
    # Outermost: every answer, the middlewares' own refusals included, gets the request id.
    app.add_middleware(RequestContext)
    return app
