"""Client requests in flight, so the gateway's background work can wait for a quiet moment.

The admission middleware counts every API request a client sends (not ``X-Priority:
background`` ones) from arrival to the last byte of its answer. Consolidation jobs
(``gateway.jobs.pacing``) wait for the count to reach zero before each short slice of their
work, so a search does not share the CPU and the GIL with a job step that started before it.
One event loop owns the counter: no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


class RequestActivity:
    def __init__(self) -> None:
        self.in_flight = 0
        self.waiting = 0  # background tasks waiting for a quiet moment
        self._quiet = asyncio.Event()
        self._quiet.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._quiet.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._quiet.set()

    @contextlib.contextmanager
    def request(self, *, counted: bool = True) -> Iterator[None]:
        """Count one client request while the block runs (``counted=False``: not this one)."""
        if not counted:
            yield
            return
        self.enter()
        try:
            yield
        finally:
            self.leave()

    async def quiet(self, timeout_s: float) -> bool:
        """Wait until no client request is in flight, at most ``timeout_s``; True if quiet."""
        if self.in_flight == 0:
            return True
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._quiet.wait(), timeout_s)
        finally:
            self.waiting -= 1
        return self.in_flight == 0
