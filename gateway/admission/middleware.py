"""Pure-ASGI admission middleware: classify, admit or shed, and scope the request's deadline.

It runs before routing and before the body is read, so a refusal costs microseconds and no
memory, which is the point of shedding. Pure ASGI (not ``BaseHTTPMiddleware``) so the endpoint
runs in this task and sees the deadline context variable.

Request headers it reads (all optional):
    X-Deadline-Ms   budget in milliseconds from arrival (default: the route class's)
    X-Priority      interactive | batch | background (default: interactive)
    X-API-Key, X-Tenant-Id   who the request is for (fair share); else ``user_id`` in the query
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admission.controller import AdmissionController
from gateway.admission.deadline import deadline_scope
from gateway.admission.limiter import Priority
from gateway.api.middleware import send_json_error
from gateway.errors import Overloaded

DEADLINE_HEADER = b"x-deadline-ms"
PRIORITY_HEADER = b"x-priority"
TENANT_HEADERS = (b"x-api-key", b"x-tenant-id")
MAX_DEADLINE_MS = 600_000
_PRIORITIES = {p.name.lower(): p for p in Priority}


def route_class(method: str, path: str) -> str | None:
    """``ingest`` (writes that embed), ``search``, ``admin`` (other /v1 calls) or None (exempt:
    health, metrics, docs must answer under any load)."""
    path = path.rstrip("/")
    if not path.startswith("/v1/"):
        return None
    if method == "POST" and path == "/v1/memories/search":
        return "search"
    if (method == "POST" and path in ("/v1/memories", "/v1/memories/batch")) or (
            method == "PATCH" and path.startswith("/v1/memories/")):
        return "ingest"
    return "admin"


class _BadHeader(ValueError):
    def __init__(self, header: bytes, msg: str) -> None:
        super().__init__(msg)
        self.error = {"loc": ["header", header.decode()], "msg": msg, "type": "value_error"}


def _parse(headers: dict[bytes, bytes]) -> tuple[Priority, float | None]:
    raw_priority = headers.get(PRIORITY_HEADER, b"interactive").decode("latin-1").strip().lower()
    if raw_priority not in _PRIORITIES:
        raise _BadHeader(PRIORITY_HEADER, f"must be one of {', '.join(_PRIORITIES)}")
    budget_s = None
    if DEADLINE_HEADER in headers:
        try:
            budget_ms = float(headers[DEADLINE_HEADER])
        except ValueError:
            budget_ms = float("nan")
        if not 0 < budget_ms <= MAX_DEADLINE_MS:
            raise _BadHeader(DEADLINE_HEADER, f"must be a number of milliseconds in "
                             f"(0, {MAX_DEADLINE_MS}]")
        budget_s = budget_ms / 1000
    return _PRIORITIES[raw_priority], budget_s


def _tenant(scope: Scope, headers: dict[bytes, bytes]) -> str | None:
    for name in TENANT_HEADERS:
        if headers.get(name):
            return f"{name.decode()}:{headers[name].decode('latin-1')}"
    users = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("user_id")
    return f"user:{users[0]}" if users else None


class Admission:
    def __init__(self, app: ASGIApp, controller: AdmissionController) -> None:
        self.app, self.controller = app, controller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        klass = route_class(scope["method"], scope["path"])
        if klass is None:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        try:
            priority, budget_s = _parse(headers)
        except _BadHeader as exc:
            return await send_json_error(send, 422, [exc.error])
        tenant = _tenant(scope, headers)
        deadline = self.controller.deadline_for(klass, budget_s)
        try:
            await self.controller.acquire(klass, priority, tenant=tenant, deadline=deadline)
        except Overloaded as exc:
            if deadline is not None and deadline.dropped_at:
                self.controller.record_deadline_drop(deadline.dropped_at)
            return await send_json_error(send, 429, str(exc.detail), exc.retry_after)
        started = time.perf_counter()
        try:
            with deadline_scope(deadline):
                await self.app(scope, receive, send)
        finally:
            self.controller.release(klass, tenant, time.perf_counter() - started)
            if deadline is not None and deadline.dropped_at:
                self.controller.record_deadline_drop(deadline.dropped_at)
