"""A size cap on the bodies of the Mem0 query routes (search, list), checked before the JSON
is decoded.

A filter costs at most ``filters.MAX_FILTER_TERMS`` terms, so a query body of a fair caller is
small; but decoding a body is work on the event loop that no thread can take over (the JSON
decoder holds the GIL), about 15 ms per MB on a busy core. So a query body past
``MAX_QUERY_BODY_BYTES`` is a 413 before anything decodes it: a 1.4 MB filter bomb (issue 19,
finding 2) is refused without costing the other tenants' requests anything.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

MAX_QUERY_BODY_BYTES = 256 * 1024  # a search or list body; a filter of 1,000 terms fits


def _too_large() -> JSONResponse:
    return JSONResponse({"detail": f"a Mem0 search or list body is at most "
                                   f"{MAX_QUERY_BODY_BYTES} bytes; narrow the filter"},
                        status_code=413)


class QueryRoute(APIRoute):
    """An API route whose body is refused (413) past ``MAX_QUERY_BODY_BYTES``, undecoded."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_QUERY_BODY_BYTES:
                return _too_large()
            if len(await request.body()) > MAX_QUERY_BODY_BYTES:  # chunked: read, then count
                return _too_large()
            return await handler(request)

        return bounded
