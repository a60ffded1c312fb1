"""Request deadlines, carried in a context variable from the edge to the Triton call.

A deadline is set once per request (from the ``X-Deadline-Ms`` header or the route class's
default) by the admission middleware. Code that is about to spend expensive work asks
``inference_timeout(default)``: an expired deadline raises ``DeadlineExceeded`` *before* the
work starts (nobody is waiting for the answer any more), a live one shortens the timeout so
Triton gives up when the caller would. Without a deadline in scope the default applies, so
scripts and tests that call the client directly behave as before.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from gateway.errors import DeadlineExceeded

# Below this much time left, a Triton round trip cannot finish: drop instead of trying.
MIN_INFERENCE_BUDGET_S = 0.002


@dataclass(slots=True)
class Deadline:
    """An absolute point on the monotonic clock; records where it caused a drop, if it did."""

    expires_at: float
    dropped_at: str | None = None  # "queue" or "before_inference": read by the middleware

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


_current: ContextVar[Deadline | None] = ContextVar("request_deadline", default=None)


def current_deadline() -> Deadline | None:
    return _current.get()


@contextlib.contextmanager
def deadline_scope(deadline: Deadline | None) -> Iterator[Deadline | None]:
    """Make ``deadline`` the one that calls below (in this task) observe."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def inference_timeout(default_s: float) -> float:
    """Seconds an inference call may take: the default, capped by the request's deadline.

    Raises ``DeadlineExceeded`` when too little time is left, so the request never reaches
    Triton.
    """
    deadline = _current.get()
    if deadline is None:
        return default_s
    remaining = deadline.remaining()
    if remaining < MIN_INFERENCE_BUDGET_S:
        deadline.dropped_at = "before_inference"
        raise DeadlineExceeded("request deadline exceeded before inference")
    return min(default_s, remaining)
