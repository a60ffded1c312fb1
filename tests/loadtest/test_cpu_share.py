"""Where the CPU went (loadtest/cpu_share.py): a real child process that burns CPU is
counted as the generator's share, and the machine's busy time covers it."""

from __future__ import annotations

import subprocess
import sys
import time

from loadtest import cpu_share

BURN = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


def test_a_waited_for_child_counts_as_the_generator() -> None:
    before, started = cpu_share.Snapshot.take(), time.perf_counter()
    subprocess.run([sys.executable, "-c", BURN], check=True)
    used = cpu_share.used(before, cpu_share.Snapshot.take(), time.perf_counter() - started)
    assert used["generator"] >= 0.25  # the child's 0.3 s of CPU, less clock granularity
    assert used["machine_busy"] >= used["generator"] - 0.05
    assert used["capacity"] > 0
    assert set(cpu_share.PARTS) <= set(used)
