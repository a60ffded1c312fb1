"""One place that turns errors into HTTP responses: ``{"detail": ...}`` and nothing internal."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gateway.errors import GatewayError, InvalidInput

log = logging.getLogger("gateway")


class ValidationProblem(BaseModel):
    loc: list[str | int]  # where: ["body", "items", 3, "text"], ["query", "user_id"], ...
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error answer: a message, or for invalid input the list of problems."""

    detail: str | list[ValidationProblem]


_DESCRIPTIONS = {
    400: "Malformed JSON",
    401: "Missing or invalid API key",
    403: "The API key's scope does not allow this call",
    404: "No such memory (also another tenant's)",
    409: "Conflict: changed concurrently, or re-ranking without a served reranker",
    413: "Request body too large",
    422: "Invalid input; detail lists each problem with its location",
    429: "Shed by admission control or over the key's rate; retry after Retry-After",
    501: "Not implemented by this service",
    503: "Inference or storage unavailable, or the request's deadline passed; retry after "
         "Retry-After",
    507: "The store's disk is full: writes are refused until space returns (reads work)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for these error statuses, all ``ErrorOut``."""
    return {code: {"model": ErrorOut, "description": _DESCRIPTIONS[code]} for code in codes}


# What any authenticated API call may answer, whatever it does.
COMMON_ERRORS = (401, 403, 422, 429, 503, 507)


def _clean(errors: list[dict]) -> list[dict]:
    """Validation errors without the echoed input (it may be huge or sensitive)."""
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in errors
    ]


_BODILESS = frozenset({"GET", "HEAD", "DELETE"})


def field_location(request: Request, error: InvalidInput) -> list[str | int] | None:
    """Where a domain error's field sits in the request: the body, or the query string for
    methods without a body."""
    if error.field is None:
        return None
    return ["query" if request.method in _BODILESS else "body", *error.field]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.retry_after:
            headers["Retry-After"] = str(exc.retry_after)
        detail = exc.detail if isinstance(exc.detail, list | str) else [exc.detail]
        loc = field_location(request, exc) if isinstance(exc, InvalidInput) else None
        if loc is not None:
            detail = [{"loc": loc, "msg": exc.detail}]
        if isinstance(detail, list):  # every problem a ValidationProblem, as documented
            detail = [{"type": "value_error", **p} if isinstance(p, dict) else p
                      for p in detail]
        return JSONResponse({"detail": detail}, status_code=exc.status_code,
                            headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _clean(list(exc.errors()))
        status = 400 if any(e["type"] == "json_invalid" for e in errors) else 422
        return JSONResponse({"detail": errors}, status_code=status)

    @app.exception_handler(RecursionError)
    async def too_deep(_: Request, __: RecursionError) -> JSONResponse:
        return JSONResponse({"detail": "JSON body nested too deeply"}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The route's template, not the path (it names users and entities); the exception's
        # message may hold ids too, so its traceback is for DEBUG.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method,
                  route_of(request.scope))
        log.debug("unhandled error", exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)


def route_of(scope: Mapping[str, Any]) -> str:
    """The matched route's path template (``/v1/memories/{memory_id}``), else a placeholder:
    never the concrete path, whose segments may be names."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    return template if isinstance(template, str) else "(no route)"
