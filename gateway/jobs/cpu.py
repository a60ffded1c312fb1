"""Where consolidation jobs do their CPU work: one thread of their own, at the lowest
scheduling priority, so searches get the CPU first.

A job's maths (k-means, pairwise cosines, grouping loops) would otherwise run on the default
executor, next to the threads that serve requests, at the same priority. Linux applies a nice
value per thread (``setpriority`` on the thread id), so this thread yields the cores to the
event loop, the store threads and Triton whenever they want them; on other systems it runs at
normal priority. One thread: jobs run one at a time anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

JOB_NICE = 19  # the lowest priority: the thread runs when nothing else wants the CPU

P = ParamSpec("P")
T = TypeVar("T")


def _lower_priority() -> None:
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), JOB_NICE)


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-cpu",
                              initializer=_lower_priority)


async def run_cpu(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` on the jobs' low-priority thread and wait for it."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(func, *args, **kwargs))
