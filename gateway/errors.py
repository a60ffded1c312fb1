"""The gateway's one error tree, and how each error maps to HTTP.

    GatewayError
    ├── InvalidInput          422  the request is well-formed JSON but makes no sense
    │   └── TooLarge          413  a part of it (an image) is over its limit
    ├── Unauthorized          401  no API key, or not a valid one
    ├── Forbidden             403  the key's scope does not allow the call
    ├── NotFound              404
    ├── Conflict              409
    ├── Overloaded            429  shed before any work; carries Retry-After
    ├── NotSupported          501  a foreign API's feature this service does not offer
    ├── StorageFull           507  the store's disk is full: writes refused until space returns
    ├── StorageUnavailable    503  the store cannot write (read-only or failing disk)
    ├── InferenceUnavailable  503  Triton down, model not loaded, or its queue full
    └── InferenceTimeout      503  Triton did not answer within the deadline
        └── DeadlineExceeded  503  the request's own deadline ran out before inference

Foreign errors (Triton, sqlite) are translated at their boundary, never in routes.
"""

from __future__ import annotations


class GatewayError(Exception):
    status_code = 500
    retry_after: int | None = None
    headers: dict[str, str] | None = None  # extra response headers

    def __init__(self, detail: object, *, retry_after: int | None = None) -> None:
        super().__init__(str(detail))
        self.detail = detail
        if retry_after is not None:
            self.retry_after = retry_after


FieldPath = tuple[str | int, ...]  # a field of the request: ("items", 3, "embedding")


class InvalidInput(GatewayError):
    """422. ``field``: the request field at fault, relative to the request (the API layer
    says which part of the request it came from)."""

    status_code = 422

    def __init__(self, detail: object, *, field: FieldPath | None = None) -> None:
        super().__init__(detail)
        self.field = field
        if field is not None:
            self.args = (f"{'.'.join(map(str, field))}: {detail}",)

    @classmethod
    def at(cls, field: FieldPath, msg: str) -> InvalidInput:
        """The request's ``field`` is invalid, for the reason ``msg``."""
        return cls(msg, field=field)


class TooLarge(InvalidInput):
    """413: a part of the request (an image) is over its documented limit."""

    status_code = 413


class Unauthorized(GatewayError):
    status_code = 401
    headers = {"WWW-Authenticate": 'Bearer realm="agent-memory"'}


class Forbidden(GatewayError):
    status_code = 403


class NotFound(GatewayError):
    status_code = 404


class Conflict(GatewayError):
    status_code = 409


class Overloaded(GatewayError):
    status_code = 429
    retry_after = 1

    def __init__(
        self, detail: object, *, retry_after: int | None = None, reason: str = "overloaded"
    ) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.reason = reason  # why it was shed: a metrics label, e.g. "queue_full"


class NotSupported(GatewayError):
    status_code = 501


class StorageFull(GatewayError):
    status_code = 507
    retry_after = 30


class StorageUnavailable(GatewayError):
    status_code = 503
    retry_after = 10


class InferenceUnavailable(GatewayError):
    status_code = 503
    retry_after = 2


class InferenceTimeout(GatewayError):
    status_code = 503
    retry_after = 2


class DeadlineExceeded(InferenceTimeout):
    """Dropped before reaching Triton: the caller's deadline had already passed."""
