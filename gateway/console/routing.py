"""The console's route class: the service's errors become HTML pages, not JSON.

Each console route raises what the API routes raise (``gateway.errors``, pydantic's
``ValidationError`` from the API's own request models); here they are answered with the error
page and the same status code. A visitor who is not signed in is sent to the sign-in form.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError

from gateway.console.auth import SignInNeeded, Viewer
from gateway.console.render import CONSOLE_CSP, PREFIX, page
from gateway.console.sessions import SESSION_COOKIE
from gateway.errors import GatewayError

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _messages(errors: list[Any]) -> list[str]:
    out = []
    for error in errors[:20]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        out.append(f"{where}: {error.get('msg', '')}" if where else str(error.get("msg", "")))
    return out


def error_page(request: Request, status_code: int, detail: object) -> Response:
    messages = _messages(detail) if isinstance(detail, list) else [str(detail)]
    return page(request, "error.html", {"status_code": status_code, "messages": messages},
                status_code=status_code)


def set_session_cookie(request: Request, response: Response, session_id: str) -> None:
    response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path=PREFIX)


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded:
                response = RedirectResponse(f"{PREFIX}/login", status_code=303)
            except GatewayError as exc:
                response = error_page(request, exc.status_code, exc.detail)
            except (ValidationError, RequestValidationError) as exc:
                response = error_page(request, 422, exc.errors())
            viewer: Viewer | None = getattr(request.state, "viewer", None)
            if viewer is not None and viewer.new_session and viewer.session_id:
                set_session_cookie(request, response, viewer.session_id)
            response.headers.setdefault("Content-Security-Policy", CONSOLE_CSP)
            return response

        return console_handler
