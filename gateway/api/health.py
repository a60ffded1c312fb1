"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.errors import GatewayError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (says nothing about its dependencies)."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: store open, Triton and the model ready, index built."""
    service = request.app.state.service
    if service.embedder.info is None:
        try:
            await service.active_space()
        except GatewayError:
            pass  # not ready yet; the checks below say which part
    checks = {
        "store": service.store.is_open,
        "triton": await service.embedder.ready(),
        "model": service.embedder.info.label if service.embedder.info else None,
        "index": service.index_built,
    }
    ok = all(checks.values())
    headers = {} if ok else {"Retry-After": str(request.app.state.settings.retry_after_s)}
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks},
        status_code=200 if ok else 503,
        headers=headers,
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry),
                    media_type=CONTENT_TYPE_LATEST)
