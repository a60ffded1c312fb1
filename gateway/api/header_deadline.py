"""A deadline for request headers: uvicorn has none once a request's first byte has come.

uvicorn's ``timeout_keep_alive`` closes a keep-alive connection idle between requests, and
stops counting at the first byte of the next one; a client sending its headers a byte at a
time (slowloris) then holds its connection for as long as it likes. This protocol (uvicorn's
``httptools`` one, which ``http="auto"`` picks when httptools is installed) gives every request
``MEMORY_HEADER_TIMEOUT_S`` from its connection or its first byte to the end of its headers;
past it the client gets 408 and the connection is closed. The app is never involved: it sees a
request only once its headers are complete. Without httptools uvicorn uses h11, and header
time stays unbounded (docs/operations.md, "Slow clients").
"""

from __future__ import annotations

import asyncio
from typing import Any

REFUSAL = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
           b"content-length: 43\r\nconnection: close\r\n\r\n"
           b'{"detail": "request headers took too long"}')


def protocol(header_timeout_s: float) -> type[asyncio.Protocol] | str:
    """uvicorn's ``http`` option: the httptools protocol with a header deadline, or "auto"
    (no deadline) when httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # no httptools: uvicorn runs h11
        return "auto"

    class HeaderDeadline(HttpToolsProtocol):
        """Arms a timer at the connection and at each request's first byte; its headers
        complete disarm it."""

        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(header_timeout_s, self._expired)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _expired(self) -> None:
            self._header_timer = None
            if self.cycle is not None and not self.cycle.response_complete:
                self._arm()  # a pipelined request waits for the answer before it: not its fault
                return
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(REFUSAL)
                self.transport.close()

    return HeaderDeadline
