"""DNS rebinding: with authentication off, serve only requests addressed to this machine.

With keys off (the loopback default) the caller is an admin, so a web page whose name an
attacker rebinds to 127.0.0.1 could have the victim's browser read every memory, delete them or
switch models: the browser sends the page's own name in ``Host``. Serving only loopback ``Host``
values (``127.0.0.1``, ``localhost``, ``[::1]``, any port) and the names of
``MEMORY_ALLOWED_HOSTS`` closes that door (issue 19, finding 4); other names get 421 and change
nothing. A request without ``Host`` is served: browsers always send one. Starlette's
``TestClient`` calls the app in-process (client ``testclient``, no socket), which no browser can
reach, so it is served whatever its ``Host``. With keys required the check is off: a rebound
page has no key.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.asgi import send_json_error

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
IN_PROCESS_CLIENT = "testclient"


def host_name(header: bytes) -> str:
    """The name of a ``Host`` value, lower case, without its port or IPv6 brackets."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    name, _, port = text.rpartition(":")
    return name if name and port.isdigit() else text


def host_allowed(header: bytes, allowed: Iterable[str]) -> bool:
    name = host_name(header)
    return name in LOOPBACK_NAMES or name in {a.strip().lower() for a in allowed}


class LoopbackHosts:
    """421 for a ``Host`` that is neither loopback nor allowed (install with auth off only)."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app, self.allowed = app, tuple(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope.get("client") or ("",))[0] == IN_PROCESS_CLIENT:
            return await self.app(scope, receive, send)
        host = next((value for name, value in scope["headers"] if name == b"host"), None)
        if host is None or host_allowed(host, self.allowed):
            return await self.app(scope, receive, send)
        return await send_json_error(
            send, 421, "this gateway (authentication off) answers only requests addressed to "
            "a loopback host (127.0.0.1, localhost, [::1]) or to MEMORY_ALLOWED_HOSTS; "
            f"not to host '{host_name(host)[:100]}'", extra_headers={"Connection": "close"})
