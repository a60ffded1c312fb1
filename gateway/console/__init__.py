"""The web console at ``/console``: server-rendered pages (Jinja2, one template per page, in the
way Django's admin or Datasette work) over the service's own logic.

Every page calls what the HTTP API's routes call (``gateway.api``: the tenant's user ids, the
scope checks, the request models and their limits, ``owned_memory``), so the console can do
exactly what the signed-in key can do through the API, no more. Layout: ``sessions`` (sign-in
sessions, CSRF tokens), ``auth`` (the viewer of a request), ``routing`` (errors as pages),
``render`` (templates, the Content-Security-Policy), ``admitted`` (admission slots for what
costs), one module per group of pages (``signin``, ``browse``, ``changes``, ``search``,
``operations``), ``templates/`` and ``static/`` checked in (no build step, nothing from another
host).
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse

from gateway.auth.authenticator import Authenticator
from gateway.console import browse, changes, operations, search, signin
from gateway.console.auth import ConsoleAuth
from gateway.console.render import CONSOLE_CSP, PACKAGE, PREFIX
from gateway.console.sessions import Sessions
from gateway.errors import NotFound

__all__ = ["install_console"]

STATIC = {"console.css": "text/css"}


def install_console(app: FastAPI, authenticator: Authenticator, *, session_s: float) -> None:
    """Serve the console under ``/console`` with this app's authenticator."""
    auth = ConsoleAuth(authenticator, Sessions(session_s))
    # Each router carries the /console prefix itself, so request metrics and the access log
    # name the full route template (/console/memories/{memory_id}).
    for router in (signin.build(auth), browse.router, changes.router, search.router,
                   operations.router):
        app.include_router(router, include_in_schema=False,
                           dependencies=[Depends(auth.attach)])
    app.add_api_route(f"{PREFIX}/static/{{name}}", static, include_in_schema=False)


async def static(name: str) -> FileResponse:
    """The console's own style sheet; a fixed list, so no request names a file path."""
    if name not in STATIC:
        raise NotFound(f"no static file {name!r}")
    return FileResponse(PACKAGE / "static" / name, media_type=STATIC[name],
                        headers={"Content-Security-Policy": CONSOLE_CSP,
                                 "Cache-Control": "no-cache"})
