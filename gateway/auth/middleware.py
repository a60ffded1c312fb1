"""Pure-ASGI authentication: resolve the key once, before admission control.

It runs outside the admission middleware so that shedding counts the key's tenant, and a
request with a bad key, or with no key where keys are required, is refused before it takes a
slot and before its body is read: an anonymous client announcing a large body and sending it
a byte at a time costs one answer and a closed connection, not an admission slot held while
FastAPI waits for the body (issue 19, finding 1). The resolved ``Principal`` goes into
``scope["auth"]`` (Starlette's ``request.auth``). Only the paths that
``gateway.auth.paths`` leaves open (health, the docs, metrics) pass through without a key.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.asgi import send_json_error
from gateway.auth.authenticator import MISSING, Authenticator
from gateway.auth.paths import is_api_path
from gateway.errors import Unauthorized

# The refusal comes before the body is read: close the connection rather than read (and
# throw away) whatever the client still sends.
CLOSE = {"Connection": "close"}


class Authenticate:
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app, self.authenticator = app, authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.authenticator.resolve(dict(scope["headers"]))
            if principal is None and is_api_path(scope["path"]):
                raise Unauthorized(MISSING)
        except Unauthorized as exc:
            await send_json_error(send, exc.status_code, exc.detail,
                                  extra_headers={**(exc.headers or {}), **CLOSE})
            return
        scope["auth"] = principal
        await self.app(scope, receive, send)
