"""Thread scheduling priority: long CPU work yields the cores to the threads that answer
requests.

Linux applies a nice value per thread (``setpriority`` on the thread id), so a worker thread
can lower its own priority, which needs no privilege. Where that is refused or unsupported,
the thread keeps its priority and nothing else changes.
"""

from __future__ import annotations

import contextlib
import os
import threading

MAX_NICE = 19


def lower_thread_priority(increment: int) -> None:
    """Raise the calling thread's nice value by ``increment`` (at most to 19)."""
    with contextlib.suppress(OSError, AttributeError):
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(MAX_NICE, current + increment))
