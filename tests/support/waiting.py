"""Waiting on a condition, never on the clock: the one poll loop every test uses.

A test that sleeps "long enough" either wastes time or breaks on a busy machine. These poll a
condition with short waits and fail with a message naming what never happened; the timeout is
generous because it only matters when something is broken.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

TIMEOUT_S = 60.0  # generous: only a broken test waits this long
POLL_S = 0.02


def wait_for(condition: Callable[[], T], what: str, timeout_s: float = TIMEOUT_S,
             poll_s: float = POLL_S) -> T:
    """Poll ``condition`` until it returns something truthy and return that; raise
    ``AssertionError`` naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(poll_s)
    return value


async def until(condition: Callable[[], T], what: str, timeout_s: float = TIMEOUT_S,
                poll_s: float = 0.001) -> T:
    """``wait_for`` inside an event loop: polls without blocking the loop, so the tasks the
    condition watches keep running."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(poll_s)
    return value
