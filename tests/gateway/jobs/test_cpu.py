"""Jobs' CPU work runs on one thread of its own at the lowest priority."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from gateway.jobs.cpu import JOB_NICE, run_cpu


def where() -> tuple[str, int]:
    thread = threading.current_thread().name
    return thread, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_job_work_runs_niced_off_the_event_loop() -> None:
    async def scenario() -> tuple[tuple[str, int], tuple[str, int], int]:
        first = await run_cpu(where)
        second = await run_cpu(where)
        return first, second, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    (name, nice), again, loop_nice = asyncio.run(scenario())
    assert name.startswith("job-cpu") and again[0] == name  # one thread, reused
    assert nice == min(JOB_NICE, 19) and loop_nice < nice  # the caller keeps its priority
