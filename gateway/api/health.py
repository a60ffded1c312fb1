"""Liveness, readiness and Prometheus metrics.

``/metrics`` is the service's, not a tenant's (its counters span every tenant): with keys
required it answers operator keys only; with authentication off, anyone (loopback).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.deps import Operator, gateway_state
from gateway.api.errors import error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (says nothing about its dependencies)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: store open, Triton serving the active version, index built.

    Only reads state (it never asks Triton to load a model). The reranker is reported, not
    required: searches work without one.
    """
    service = gateway_state(request).service
    info = service.models.info
    checks = {
        "store": service.store.is_open,
        "triton": await service.embedder.ready(info.version if info else None),
        "model": info.label if info else None,
        "index": service.index_built,
    }
    ok = all(checks.values())
    reranker = service.reranker.label if service.reranker is not None else None
    headers = {} if ok else {"Retry-After": str(gateway_state(request).settings.retry_after_s)}
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks,
         "reranker": reranker, "query_model": service.models.query_model,
         "query_encoder": service.vectors.query_encoder(service.models.active)
         if service.models.active is not None else None,
         "query_precision": service.vectors.query_precision(service.models.active)
         if service.models.active is not None else None},
        status_code=200 if ok else 503,
        headers=headers,
    )


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}},
                             "description": "Prometheus text format"},
                       **error_responses(401, 403)})
async def metrics(request: Request, _caller: Operator) -> Response:
    return Response(generate_latest(gateway_state(request).metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
