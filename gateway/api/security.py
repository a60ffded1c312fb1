"""Response hygiene for every answer: a request id, security headers, an access log line.

The request id ties a client's report to the server's log lines. A client may send its own
``X-Request-Id`` (a proxy's trace id, say); it is kept when it is short and plain (letters,
digits, ``._:-``), otherwise the gateway makes one, so a hostile header never reaches the log.
Every log record written while a request is served carries the id (``RequestIdFilter``).

The access log names the route template (``/v1/memories/{memory_id}``), never the raw path or
query string, so no memory text, user text or key reaches the log at INFO.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.middleware import send_json_error

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_MAX = 128
_REQUEST_ID_OK = re.compile(rf"[A-Za-z0-9._:\-]{{1,{REQUEST_ID_MAX}}}")
NO_REQUEST = "-"

# Headers for a JSON API: nothing on it is meant to be framed, sniffed or cached by a browser.
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)
# The API's JSON answers may load nothing at all; the docs pages (Swagger UI, ReDoc) load their
# scripts and styles from a CDN, so they get FastAPI's defaults instead of this policy.
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")

# Request-line and header budgets. uvicorn's default parser (httptools) reads headers of any
# size; past these the gateway answers 414 / 431 before any work (a proxy in front should cap
# them too: the bytes were already read into memory by then).
MAX_URL_BYTES = 16 * 1024
MAX_HEADER_BYTES = 32 * 1024

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default=NO_REQUEST)
access_log = logging.getLogger("gateway.access")
log = logging.getLogger("gateway")


def accepted_request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-Id`` if it is plain and short, else a fresh random one."""
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID_OK.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) for the log format to print."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def install_request_id_logging(format_: str) -> None:
    """Root handlers print the request id: call after ``logging.basicConfig``."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(logging.Formatter(format_))


def _oversize(scope: Scope) -> tuple[int, str] | None:
    if len(scope.get("raw_path") or b"") + len(scope.get("query_string", b"")) > MAX_URL_BYTES:
        return 414, f"request URL longer than {MAX_URL_BYTES} bytes"
    if sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES:
        return 431, f"request headers larger than {MAX_HEADER_BYTES} bytes"
    return None


class RequestContext:
    """Outermost middleware: request id, security headers, URL and header budgets, one access
    log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = accepted_request_id(scope["headers"])
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0
        docs = scope["path"].startswith(DOCS_PATHS)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                present = {k.lower() for k, _ in headers}
                extra = SECURITY_HEADERS if docs else (*SECURITY_HEADERS, API_CSP)
                headers.extend((k, v) for k, v in extra if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            refusal = _oversize(scope)
            if refusal is not None:
                status_code, detail = refusal
                await send_json_error(send_with_headers, status_code, detail)
            else:
                await self.app(scope, receive, send_with_headers)
        except Exception:
            # Answer here, so even a bug's 500 carries the id and the headers; then re-raise for
            # the server's own error log (Starlette sees the answer started and sends nothing).
            if status == 0:
                log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                await send_json_error(send_with_headers, 500, "internal error")
            raise
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            access_log.info("%s %s %d %.1f ms", scope["method"], route, status,
                            (time.perf_counter() - started) * 1000)
            request_id.reset(token)

# CORS, when origins are allowed (MEMORY_CORS_ALLOW_ORIGINS): the API's methods and headers.
CORS_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
CORS_HEADERS = ["Authorization", "Content-Type", "X-Request-Id", "X-Deadline-Ms"]
CORS_EXPOSED = ["X-Request-Id", "Retry-After"]
