"""Pure-ASGI authentication: resolve the key once, before admission control.

It runs outside the admission middleware so that shedding counts the key's tenant, and a
request with a bad key is refused before it takes a slot. The resolved ``Principal`` goes into
``scope["auth"]`` (Starlette's ``request.auth``); a request without a key passes through with
``None`` there, and the routes that need a caller answer 401 (health, metrics and the docs
stay open).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.asgi import send_json_error
from gateway.auth.authenticator import Authenticator
from gateway.errors import Unauthorized


class Authenticate:
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app, self.authenticator = app, authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            scope["auth"] = await self.authenticator.resolve(dict(scope["headers"]))
        except Unauthorized as exc:
            await send_json_error(send, exc.status_code, exc.detail, extra_headers=exc.headers)
            return
        await self.app(scope, receive, send)
