"""Where the CPU went during a benchmark phase: seconds of CPU per part of the stack.

On a machine with as many cores as replicas, a throughput ratio short of the target is
explained by what else ran on those cores; this measures it instead of guessing. Parts:
the gateways (``python -m gateway``), PostgreSQL's server processes, Triton, haproxy, and
the load generator (this process's children: wrk, or the Python generator's process).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

PARTS = ("gateways", "postgres", "triton", "haproxy", "generator")


def _part(process: psutil.Process) -> str | None:
    try:
        name = process.name()
        if name.startswith("postgres"):
            return "postgres"
        if name.startswith(("tritonserver", "triton_python")):
            return "triton"
        if name.startswith("haproxy"):
            return "haproxy"
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return "gateways" if "-m gateway" in command and "pytest" not in command else None


def _seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return 0.0
    return times.user + times.system


@dataclass
class Snapshot:
    by_pid: dict[int, tuple[str, float]]
    children: float  # CPU seconds of this process's waited-for children
    machine: float  # CPU seconds of every core (busy, not idle)

    @classmethod
    def take(cls) -> Snapshot:
        by_pid = {}
        for process in psutil.process_iter():
            part = _part(process)
            if part is not None:
                by_pid[process.pid] = (part, _seconds(process))
        times, total = os.times(), psutil.cpu_times()
        busy = total.user + total.system + total.nice + getattr(total, "irq", 0.0) + getattr(
            total, "softirq", 0.0)
        return cls(by_pid, times.children_user + times.children_system, busy)


def used(before: Snapshot, after: Snapshot, wall_s: float) -> dict[str, float]:
    """CPU seconds per part between two snapshots (processes that started in between count
    from zero), the machine's busy seconds and the cores' capacity in that time."""
    out = dict.fromkeys(PARTS, 0.0)
    for pid, (part, seconds) in after.by_pid.items():
        out[part] += seconds - (before.by_pid[pid][1] if pid in before.by_pid else 0.0)
    out["generator"] = after.children - before.children
    out["machine_busy"] = after.machine - before.machine
    out["capacity"] = wall_s * (os.cpu_count() or 1)
    return {key: round(value, 2) for key, value in out.items()}
