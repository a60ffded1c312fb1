"""A circuit breaker for a remote model server: stop calling a server that keeps failing.

Closed: calls go through; ``failures`` consecutive failed attempts open it. Open: calls fail at
once (503 with ``Retry-After`` = the time left) for ``reset_s``, so a dead server costs callers
no connect timeouts and gets no retry storm. Then half-open: one trial call goes through while
the others still fail fast; its success closes the breaker, its failure opens it again.

All on the event loop (no locks needed): state changes happen between awaits.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from gateway.errors import InferenceUnavailable


@dataclass
class CircuitBreaker:
    name: str
    failures: int = 5  # consecutive failed attempts that open it
    reset_s: float = 10.0  # how long it stays open before a trial call
    _consecutive: int = 0
    _opened_at: float | None = None
    _trial: bool = False  # a half-open trial call is in flight
    opened: int = field(default=0)  # times it opened (for tests and logs)

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if self._remaining() <= 0 else "open"

    def _remaining(self) -> float:
        assert self._opened_at is not None
        return self._opened_at + self.reset_s - time.monotonic()

    def before_call(self) -> None:
        """Raise ``InferenceUnavailable`` when the call must not go out now."""
        if self._opened_at is None:
            return
        remaining = self._remaining()
        if remaining <= 0 and not self._trial:
            self._trial = True  # this caller is the half-open trial
            return
        raise InferenceUnavailable(
            f"{self.name} is failing; calls paused (circuit breaker open)",
            retry_after=max(1, math.ceil(remaining)))

    def succeeded(self) -> None:
        self._consecutive, self._opened_at, self._trial = 0, None, False

    def failed(self) -> None:
        self._consecutive += 1
        if self._trial or (self._opened_at is None and self._consecutive >= self.failures):
            self._opened_at = time.monotonic()
            self.opened += 1
        self._trial = False

    def released(self) -> None:
        """A call ended with neither success nor a server failure (e.g. cancelled)."""
        self._trial = False
