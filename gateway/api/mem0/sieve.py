"""Testing a Mem0 filter over many memories: in a worker thread, within a time limit.

A filter's cost per memory is bounded by ``filters.MAX_FILTER_TERMS``, but a call may test it
over up to ``finder.MAX_SCAN`` memories. That work never runs on the event loop (every tenant's
requests wait on it there), and it stops at ``FILTER_TIME_LIMIT_S``: the caller gets a 422
asking for a narrower filter. 422 rather than 503, since the same filter over the same
memories would take as long again; retrying cannot help, narrowing can.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from gateway.api.mem0.filters import Node, Record, evaluate
from gateway.errors import InvalidInput

FILTER_TIME_LIMIT_S = 1.0  # the most time one call may spend testing its filter
CHECK_EVERY = 64  # items between two looks at the clock
T = TypeVar("T")


class FilterTooSlow(InvalidInput):
    """Testing the filter took longer than ``FILTER_TIME_LIMIT_S``."""


def deadline(limit_s: float = FILTER_TIME_LIMIT_S) -> float:
    """When a call that starts testing now must stop (one per call, shared by its batches)."""
    return time.monotonic() + limit_s


async def keep(node: Node, items: Sequence[T], record: Callable[[T], Record],
               until: float, *, maybe: bool = False) -> list[T]:
    """The items whose record satisfies ``node``, in their order, tested off the loop;
    :class:`FilterTooSlow` once the clock passes ``until``. With ``maybe``, records hold only
    some fields and the items that may satisfy it are kept (``evaluate(partial=True)``)."""
    if not items:
        return []
    return await asyncio.to_thread(_keep, node, items, record, until, maybe)


def _keep(node: Node, items: Sequence[T], record: Callable[[T], Record],
          until: float, maybe: bool) -> list[T]:
    kept = []
    for i, item in enumerate(items):
        if i % CHECK_EVERY == 0 and time.monotonic() > until:
            raise FilterTooSlow(f"testing the filter took longer than {FILTER_TIME_LIMIT_S} s; "
                                "narrow it (name a user_id, use fewer conditions)")
        found = evaluate(node, record(item), partial=maybe)
        if found or (maybe and found is None):
            kept.append(item)
    return kept
