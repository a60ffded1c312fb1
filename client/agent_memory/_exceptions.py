"""Every error the client raises. ``detail`` is the server's ``{"detail": ...}`` as sent.

    MemoryServiceError
    ├── APIConnectionError            the request did not get an answer (connect, timeout)
    └── APIStatusError                the server answered 4xx/5xx: status_code, detail, response
        ├── BadRequestError           400  malformed JSON
        ├── AuthenticationError       401  missing or invalid API key
        ├── PermissionDeniedError     403  the key's scope does not allow the call
        ├── NotFoundError             404  no such memory (or another tenant's)
        ├── ConflictError             409  concurrent update; rerank without a reranker
        ├── PayloadTooLargeError      413
        ├── UnprocessableEntityError  422  invalid input; detail lists {loc, msg, type}
        ├── RateLimitError            429  shed by admission control (retried first)
        └── InternalServerError       5xx
            └── ServiceUnavailableError  503  inference down or busy (retried first)
"""

from __future__ import annotations

from typing import Any

import httpx


class MemoryServiceError(Exception):
    """Base of everything this package raises."""


class APIConnectionError(MemoryServiceError):
    def __init__(self, message: str, *, request: httpx.Request | None = None) -> None:
        super().__init__(message)
        self.request = request


class APIStatusError(MemoryServiceError):
    def __init__(self, response: httpx.Response, detail: Any) -> None:
        super().__init__(f"{response.status_code}: {detail}")
        self.response = response
        self.status_code = response.status_code
        self.detail = detail


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class PayloadTooLargeError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class InternalServerError(APIStatusError):
    pass


class ServiceUnavailableError(InternalServerError):
    pass


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError,
    404: NotFoundError, 409: ConflictError, 413: PayloadTooLargeError,
    422: UnprocessableEntityError, 429: RateLimitError, 503: ServiceUnavailableError,
}


def error_for(response: httpx.Response) -> APIStatusError:
    """The most specific exception for an error response, carrying its ``detail``."""
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text
    cls = _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    return cls(response, detail)
