"""A deadline and a minimum rate for request bodies: uvicorn has none.

Without them a client that announces a large body and sends it a byte every few seconds holds
its connection, and (once admitted) its admission slot, for as long as it likes (issue 19,
finding 1). Here the body must be complete within ``MEMORY_BODY_TIMEOUT_S`` of the request's
headers and, after ``MEMORY_BODY_GRACE_S``, keep an average of at least
``MEMORY_BODY_MIN_BYTES_PER_S``; otherwise the app is told the client left (so it stops
reading), the client gets 408 and the connection is closed. Time spent before the app asks for
the body (an admission queue) counts too: the bytes wait in the socket meanwhile and arrive at
once when read. Headers have their own deadline, in the server (``gateway.api.header_deadline``):
the app sees a request only once its headers are complete.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.asgi import send_json_error

CLOSE = {"Connection": "close"}  # the rest of the body is not worth reading


@dataclass(frozen=True)
class BodyPace:
    """The rule: by ``started + grace_s + n / min_bytes_per_s`` more than ``n`` bytes must have
    arrived, and all of them by ``started + timeout_s`` (times on one monotonic clock)."""

    started: float
    timeout_s: float
    min_bytes_per_s: float
    grace_s: float

    def due(self, received: int) -> float:
        """When more than ``received`` bytes must have arrived."""
        end = self.started + self.timeout_s
        if self.min_bytes_per_s > 0:
            end = min(end, self.started + self.grace_s + received / self.min_bytes_per_s)
        return end


class BodyDeadline:
    """408 (and a closed connection) for a body that arrives too slowly."""

    def __init__(self, app: ASGIApp, timeout_s: float, min_bytes_per_s: float,
                 grace_s: float) -> None:
        self.app = app
        self.timeout_s, self.min_bytes_per_s, self.grace_s = timeout_s, min_bytes_per_s, grace_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pace = BodyPace(time.monotonic(), self.timeout_s, self.min_bytes_per_s, self.grace_s)
        received = 0
        complete = timed_out = answered = replaced = False
        detail = (f"request body too slow: it must arrive within {self.timeout_s:g} s, at "
                  f"{self.min_bytes_per_s:g} bytes/s or more after {self.grace_s:g} s")

        async def paced_receive() -> Message:
            nonlocal received, complete, timed_out
            if complete or timed_out:
                return await receive() if complete else {"type": "http.disconnect"}
            try:
                message = await asyncio.wait_for(
                    receive(), max(0.0, pace.due(received) - time.monotonic()))
            except TimeoutError:
                timed_out = True
                return {"type": "http.disconnect"}  # the app stops reading
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            # Whatever the app makes of the cut-off body, the client gets one clear 408.
            nonlocal answered, replaced
            if answered or not timed_out:
                answered = answered or message["type"] == "http.response.start"
                await send(message)
            elif message["type"] == "http.response.start" and not replaced:
                replaced = True
                await send_json_error(send, 408, detail, extra_headers=CLOSE)

        await self.app(scope, paced_receive, guarded_send)
        if timed_out and not (answered or replaced):
            await send_json_error(send, 408, detail, extra_headers=CLOSE)
