"""Sign in with an API key, sign out.

The key is posted in a form (never in a URL), checked by the API's own ``Authenticator``, and
kept in the server-side session (``gateway.console.sessions``); the browser gets a random
session id in an HttpOnly, SameSite=Strict cookie. The sign-in form carries its own CSRF
token (a cookie and a field that must match), so no other site can sign a browser in.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse

from gateway.console.auth import ConsoleAuth, Form, Viewer, current_viewer, same_origin
from gateway.console.render import PREFIX, page
from gateway.console.routing import ConsoleRoute, set_session_cookie
from gateway.console.sessions import LOGIN_COOKIE, SESSION_COOKIE, new_token, same_token
from gateway.errors import Forbidden, InvalidInput

MAX_KEY_FIELD = 512


def build(auth: ConsoleAuth) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute)

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        if not auth.required:
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        token = new_token()
        response = page(request, "login.html", {"login_token": token})
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path=f"{PREFIX}/login")
        return response

    @router.post("/login")
    async def login(request: Request) -> Response:
        if not auth.required:
            return RedirectResponse(f"{PREFIX}/", status_code=303)
        form = await request.form(max_files=0, max_fields=8)
        token, key = form.get("csrf"), form.get("api_key")
        if not same_origin(request) or not same_token(
                token if isinstance(token, str) else None, request.cookies.get(LOGIN_COOKIE)):
            raise Forbidden("the sign-in form's token is missing or wrong: reload the page")
        if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_FIELD:
            raise InvalidInput("give an API key")
        await auth.principal_of(key.strip())  # Unauthorized: the error page, status 401
        old = request.cookies.get(SESSION_COOKIE)
        auth.sessions.drop(old)  # a fresh session id on every sign-in (no fixation)
        session_id, _ = auth.sessions.create(key.strip())
        response = RedirectResponse(f"{PREFIX}/", status_code=303)
        set_session_cookie(request, response, session_id)
        response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
        return response

    @router.post("/logout")
    async def logout(request: Request, _form: Form,
                     viewer: Annotated[Viewer, Depends(current_viewer)]) -> Response:
        auth.sessions.drop(viewer.session_id)
        response = RedirectResponse(f"{PREFIX}/login" if auth.required else f"{PREFIX}/",
                                    status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    return router
