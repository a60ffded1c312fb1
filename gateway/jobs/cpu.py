"""Where consolidation jobs do their CPU work, off the event loop, on threads of their own.

Two kinds of work, two threads (jobs run one at a time):

- ``run_cpu``: maths that releases the GIL (faiss k-means and its OpenMP workers, numpy on
  whole matrices), on a thread at the lowest scheduling priority, so it only takes a core
  that searches, the store's threads and Triton do not want. Linux applies a nice value per
  thread (``setpriority`` on the thread id; threads it starts inherit it); elsewhere the
  thread keeps normal priority.
- ``run_step``: Python loops that hold the GIL (grouping, sorting), in short steps, at normal
  priority. At nice 19 such a step loses its core to any other work while holding the GIL,
  and every request step that needs the GIL then waits for it (priority inversion: measured
  during ``make bench-jobs`` on a loaded machine, where niced steps of 2 ms of CPU took
  100 ms to over a second of wall time). The job paces these steps (``gateway.jobs.pacing``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from gateway.threads import MAX_NICE, lower_thread_priority

JOB_NICE = MAX_NICE  # the lowest priority: the thread runs when nothing else wants the CPU

P = ParamSpec("P")
T = TypeVar("T")


@functools.cache
def _niced() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-cpu",
                              initializer=functools.partial(lower_thread_priority, JOB_NICE))


@functools.cache
def _steps() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-step")


async def run_cpu(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` (GIL-free maths) on the jobs' low-priority thread and wait for it."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_niced(), functools.partial(func, *args, **kwargs))


async def run_step(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` (a short Python step that holds the GIL) on the jobs' step thread, at
    normal priority, and wait for it."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_steps(), functools.partial(func, *args, **kwargs))
