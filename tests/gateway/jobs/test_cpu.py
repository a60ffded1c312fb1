"""Jobs' GIL-free maths runs on one thread of its own at the lowest priority; their Python
steps on another one at the caller's priority (a niced thread holding the GIL would stall
the event loop)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from gateway.jobs.cpu import JOB_NICE, run_cpu, run_step


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


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_python_steps_run_off_the_event_loop_at_normal_priority() -> None:
    async def scenario() -> tuple[tuple[str, int], tuple[str, int], str, int]:
        niced = await run_cpu(where)
        step = await run_step(where)
        return niced, step, threading.current_thread().name, os.getpriority(
            os.PRIO_PROCESS, threading.get_native_id())

    niced, (name, nice), loop_thread, loop_nice = asyncio.run(scenario())
    assert name.startswith("job-step") and name != loop_thread and name != niced[0]
    assert nice == loop_nice < niced[1]
