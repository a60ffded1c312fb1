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
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from gateway.threads import MAX_NICE, lower_thread_priority

JOB_NICE = MAX_NICE  # the lowest priority: the thread runs when nothing else wants the CPU

P = ParamSpec("P")
T = TypeVar("T")


@functools.cache
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="job-cpu",
                              initializer=functools.partial(lower_thread_priority, JOB_NICE))


async def run_cpu(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``func`` on the jobs' low-priority thread and wait for it."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), functools.partial(func, *args, **kwargs))
