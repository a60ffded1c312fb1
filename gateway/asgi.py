"""Plain ASGI helpers shared by every middleware layer (auth, admission, the HTTP edge).

Kept apart from ``gateway.api`` so lower layers can answer a request without importing the
HTTP layer.
"""

from __future__ import annotations

import json

from starlette.types import Send


async def send_json_error(send: Send, status: int, detail: object,
                          retry_after: int | None = None,
                          extra_headers: dict[str, str] | None = None) -> None:
    """A complete ``{"detail": ...}`` response from ASGI middleware (no app involved)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    if retry_after:
        headers.append((b"retry-after", str(retry_after).encode()))
    for name, value in (extra_headers or {}).items():
        headers.append((name.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
