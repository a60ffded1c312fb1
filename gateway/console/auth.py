"""Who is looking at the console, and the checks every console request passes.

The API resolves its caller from a header (``gateway.auth.middleware``); a browser has no
header to send, so the console resolves the same ``Principal`` from the API key held in its
server-side session, with the same ``Authenticator``: tenancy and key scopes are the API's.
With authentication off every visitor is the local user (``ANONYMOUS``, the operator), but
still gets a session, so that every form carries a CSRF token: a page elsewhere could post to
a console on this machine otherwise.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from starlette.datastructures import FormData

from gateway.api.deps import demand
from gateway.auth.authenticator import Authenticator
from gateway.auth.principal import ANONYMOUS, KeyScope, Principal
from gateway.console.sessions import SESSION_COOKIE, Session, Sessions, same_token
from gateway.errors import Forbidden, Unauthorized

MAX_FORM_FIELDS = 64


class SignInNeeded(Exception):
    """No signed-in viewer: the page answers with a redirect to the sign-in form."""


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal | None  # None: not signed in
    session_id: str | None
    session: Session | None
    new_session: bool = False  # the answer sets the session cookie


class ConsoleAuth:
    """Resolves the viewer of each console request (a router dependency, ``attach``)."""

    def __init__(self, authenticator: Authenticator, sessions: Sessions) -> None:
        self.authenticator, self.sessions = authenticator, sessions

    @property
    def required(self) -> bool:
        return self.authenticator.required

    async def principal_of(self, key: str) -> Principal:
        """The key's principal, or Unauthorized: the API's own resolution of a key."""
        principal = await self.authenticator.resolve({b"authorization": b"Bearer " +
                                                      key.encode("ascii", "replace")})
        if principal is None:
            raise Unauthorized("give an API key")
        return principal

    async def viewer(self, request: Request) -> Viewer:
        session_id = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(session_id)
        if not self.required:
            if session is None:
                session_id, session = self.sessions.create(None)
                return Viewer(ANONYMOUS, session_id, session, new_session=True)
            return Viewer(ANONYMOUS, session_id, session)
        if session is None or session.key is None:
            return Viewer(None, None, None)
        try:
            return Viewer(await self.principal_of(session.key), session_id, session)
        except Unauthorized:  # revoked or expired since sign-in: the session ends
            self.sessions.drop(session_id)
            return Viewer(None, None, None)

    async def attach(self, request: Request) -> None:
        viewer = await self.viewer(request)
        request.state.viewer = viewer
        request.state.console = {
            "viewer": viewer.principal,
            "csrf": viewer.session.csrf if viewer.session else "",
            "auth_required": self.required,
            "operator": viewer.principal is not None and viewer.principal.operator,
        }


def current_viewer(request: Request) -> Viewer:
    viewer: Viewer = request.state.viewer
    return viewer


async def signed_in(viewer: Annotated[Viewer, Depends(current_viewer)]) -> Principal:
    if viewer.principal is None:
        raise SignInNeeded
    return viewer.principal


def same_origin(request: Request) -> bool:
    """A browser's ``Origin``, when it names one, is this host: a cross-site post is refused
    even before its token is looked at. Under ``Referrer-Policy: no-referrer`` (the gateway's)
    browsers send ``Origin: null`` for the console's own forms, so "null" decides nothing and
    the session's token does."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def checked_form(request: Request,
                       viewer: Annotated[Viewer, Depends(current_viewer)]) -> FormData:
    """A POSTed form whose CSRF token is the session's (else 403, nothing done)."""
    form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
    token = form.get("csrf")
    expected = viewer.session.csrf if viewer.session else None
    if not same_origin(request) or not same_token(token if isinstance(token, str) else None,
                                                  expected):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and "
                        "try again")
    return form


def scoped(needed: KeyScope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency: the signed-in viewer if its key's scope includes ``needed`` (else 403,
    the API's own check and message)."""

    async def check(principal: Annotated[Principal, Depends(signed_in)]) -> Principal:
        return demand(principal, needed)

    return check


Reader = Annotated[Principal, Depends(scoped(KeyScope.READ))]
Writer = Annotated[Principal, Depends(scoped(KeyScope.WRITE))]
AdminViewer = Annotated[Principal, Depends(scoped(KeyScope.ADMIN))]
OperatorViewer = Annotated[Principal, Depends(scoped(KeyScope.OPERATOR))]
Form = Annotated[FormData, Depends(checked_form)]
