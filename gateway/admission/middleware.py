"""Pure-ASGI admission middleware: classify, admit or shed, and scope the request's deadline.

It runs before routing and before the body is read, so a refusal costs microseconds and no
memory, which is the point of shedding. Pure ASGI (not ``BaseHTTPMiddleware``) so the endpoint
runs in this task and sees the deadline context variable.

Request headers it reads (all optional):
    X-Deadline-Ms   budget in milliseconds from arrival (default: the route class's)
    X-Priority      interactive | batch | background (default: interactive)
    X-Tenant-Id     who the request is for (fair share) when authentication is off; else
                    ``user_id`` in the query

With authentication on, the tenant is the API key's (resolved by ``gateway.auth.middleware``
before this runs), and a key with its own rate is limited first (``gateway.auth.rates``).
``X-Tenant-Id`` and ``user_id`` are then not believed: a caller without a key (none reaches an
API route, the auth middleware refuses it first) counts as one tenant, ``anonymous``.
"""

from __future__ import annotations

import math
import time
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admission.controller import AdmissionController
from gateway.admission.limiter import Priority
from gateway.asgi import send_json_error
from gateway.auth.paths import API_PREFIXES
from gateway.auth.principal import Principal
from gateway.auth.rates import SHED_REASON as KEY_RATE
from gateway.auth.rates import KeyRates
from gateway.deadline import deadline_scope
from gateway.errors import Overloaded

DEADLINE_HEADER = b"x-deadline-ms"
PRIORITY_HEADER = b"x-priority"
TENANT_HEADER = b"x-tenant-id"
MAX_DEADLINE_MS = 600_000
_PRIORITIES = {p.name.lower(): p for p in Priority}

ANONYMOUS_TENANT = "anonymous"

SEARCH_PATHS = ("/v1/memories/search", "/v2/memories/search", "/v3/memories/search")
INGEST_POSTS = ("/v1/memories", "/v1/memories/batch", "/v3/memories/add")


def route_class(method: str, path: str) -> str | None:
    """``ingest`` (writes that embed), ``search``, ``admin`` (other API calls) or None (exempt:
    health, metrics, docs must answer under any load)."""
    path = path.rstrip("/")
    if not path.startswith(API_PREFIXES):
        return None
    if method == "POST" and path in SEARCH_PATHS:
        return "search"
    if (method == "POST" and path in INGEST_POSTS) or (
            method in ("PATCH", "PUT") and path.startswith(("/v1/memories/", "/v1/batch"))):
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


def _tenant(scope: Scope, headers: dict[bytes, bytes], trust_client: bool = True) -> str | None:
    """The key's tenant; else (``trust_client``: authentication off) what the client says."""
    principal = scope.get("auth")
    if isinstance(principal, Principal) and principal.key_id is not None:
        return principal.admission_label
    if not trust_client:
        return ANONYMOUS_TENANT
    if headers.get(TENANT_HEADER):
        return f"{TENANT_HEADER.decode()}:{headers[TENANT_HEADER].decode('latin-1')}"
    users = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("user_id")
    return f"user:{users[0]}" if users else None


class Admission:
    def __init__(self, app: ASGIApp, controller: AdmissionController, *,
                 trust_client: bool = True) -> None:
        self.app, self.controller = app, controller
        self.trust_client = trust_client  # False when keys are required
        self.key_rates = KeyRates()

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
        principal = scope.get("auth")
        if isinstance(principal, Principal) and self.key_rates.admit(principal) is not None:
            self.controller.record_shed(klass, KEY_RATE)
            assert principal.rate_per_s is not None
            return await send_json_error(send, 429, "this API key is over its request rate; "
                                         "retry later", math.ceil(1 / principal.rate_per_s))
        tenant = _tenant(scope, headers, self.trust_client)
        deadline = self.controller.deadline_for(klass, budget_s)
        # Counted from arrival to the answer's end: background jobs wait for a quiet moment.
        with self.controller.activity.request(counted=priority is not Priority.BACKGROUND):
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
