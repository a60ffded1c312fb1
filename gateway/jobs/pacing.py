"""Interactive-first pacing: a job works in short slices and lets client requests go first.

A consolidation job shares two cores, the GIL and the store's threads with the searches it
must not slow down. Measured during ``make bench-jobs`` (per-thread CPU and py-spy ``--gil``),
its cost came in long stretches: one write transaction per user (the lexical index's Python
tokenizer under the GIL on the store's writer thread, hundreds of ms), whole-user reads,
grouping loops. A search that arrived meanwhile waited for the GIL and a core.

So a job's work is cut into slices (a read chunk, a grouping step of a few ms, a write of a
few groups), and before each slice ``Pacer.turn`` waits:

- while client requests are in flight (``gateway.admission.activity``), at most
  ``max_wait_s``, so a job still moves under continuous load (one slice per ``max_wait_s``);
- after a slice that took ``t`` seconds, ``t * (1 - duty) / duty`` more, so the job is busy at
  most ``duty`` of the time. Slices are measured in wall time (a write's fsync included), but
  maths handed to the jobs' nice-19 thread (``Pacer.niced``) is left out: it only gets a core
  that nothing else wants, so its wall time says how busy the machine is, not the job.

A request that arrives during a slice shares the CPU with it for that slice only: the next
slice waits until the request has been answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from gateway.admission.activity import RequestActivity
from gateway.jobs.cpu import run_cpu

STEP_S = 0.002  # a Python step's budget (gateway.jobs.cpu.run_step): what a search may wait
WRITE_ROWS = 8  # memories changed per write transaction: a few ms of the writer's time

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(slots=True)
class PacerStats:
    slices: int = 0
    busy_s: float = 0.0  # inside slices (work on the nice-19 thread aside)
    rest_s: float = 0.0  # resting for the duty cycle
    yield_s: float = 0.0  # waiting for client requests to finish


class Pacer:
    """Call ``await turn()`` before each slice of a job's work; ``pause()`` when the job waits
    for something that is not work (an admission slot, a checkpoint), so that time is not
    counted as busy. ``Pacer()`` never waits (tests, callers with no requests to yield to)."""

    def __init__(self, activity: RequestActivity | None = None, *, duty: float = 1.0,
                 max_wait_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < duty <= 1:
            raise ValueError("duty must be in (0, 1]")
        self.activity = activity
        self.duty = duty
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.stats = PacerStats()
        self._slice_started: float | None = None

    async def turn(self) -> None:
        """End the running slice (rest for the duty cycle), wait for client requests to
        finish (bounded), start the next slice."""
        if self._slice_started is not None:
            busy = self.clock() - self._slice_started
            self.stats.busy_s += busy
            rest = busy * (1 - self.duty) / self.duty
            if rest > 0:
                self.stats.rest_s += rest
                await asyncio.sleep(rest)
        if self.activity is not None and self.max_wait_s > 0:
            started = self.clock()
            await self.activity.quiet(self.max_wait_s)
            self.stats.yield_s += self.clock() - started
        else:
            await asyncio.sleep(0)  # others' ready callbacks run first, as at any await
        self.stats.slices += 1
        self._slice_started = self.clock()

    async def niced(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``func`` (GIL-free maths) on the jobs' nice-19 thread (``gateway.jobs.cpu``),
        outside the busy clock (see the module docstring)."""
        started = self.clock()
        try:
            return await run_cpu(func, *args, **kwargs)
        finally:
            if self._slice_started is not None:
                self._slice_started += self.clock() - started

    def pause(self) -> None:
        """End the running slice without resting: what follows until the next ``turn`` is
        not the job's work."""
        if self._slice_started is not None:
            self.stats.busy_s += self.clock() - self._slice_started
            self._slice_started = None


def write_chunks(groups: Sequence[Sequence[T]], rows: int = WRITE_ROWS
                 ) -> Iterator[list[Sequence[T]]]:
    """Consecutive groups, as many per chunk as fit ``rows`` members (one group at least):
    each chunk is one write transaction, one slice."""
    chunk: list[Sequence[T]] = []
    size = 0
    for group in groups:
        if chunk and size + len(group) > rows:
            yield chunk
            chunk, size = [], 0
        chunk.append(group)
        size += len(group)
    if chunk:
        yield chunk
