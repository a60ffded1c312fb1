"""A native HTTP load generator (wrk) for the throughput benchmarks.

On a 2-core machine the Python generator (aiohttp, JSON-encoding 384 floats per request) used
a large share of a core at 1,000 searches/s: with two replicas pinned to the two cores it
competed with them, with one replica it had the second core to itself. wrk sends prepared
bodies from C (a Lua script picks the next one), so the generator's share of the cores
shrinks to a few percent and what is measured is the gateway.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Each connection posts the bodies of its file in turn (one JSON body per line).
SCRIPT = """
local bodies = {}
local next_body = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
end
request = function()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", args_path, {["Content-Type"] = "application/json"},
                    bodies[next_body])
end
"""

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_s: float
    non_2xx: int
    errors: int  # socket errors: connect, read, write, timeout
    p50_ms: float
    p99_ms: float
    summary: str = ""  # wrk's own report, for the log


def binary() -> str | None:
    return shutil.which("wrk")


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse(output: str) -> WrkResult:
    """wrk's summary (with ``--latency``) as figures."""
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.MULTILINE))
    return WrkResult(requests, rate, int(non_2xx.group(1)) if non_2xx else 0,
                     sum(int(g) for g in errors.groups()) if errors else 0,
                     _ms(latency["50"]), _ms(latency["99"]), output.strip())


def run_many(jobs: Sequence[tuple[str, str, list[dict]]], connections: int,
             seconds: float) -> list[WrkResult]:
    """One wrk process per job (base URL, path, bodies), all at once, each with one thread
    and ``connections`` keep-alive connections posting its bodies for ``seconds``."""
    wrk = binary()
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="wrk-") as tmp:
        processes = []
        for n, (url, path, bodies) in enumerate(jobs):
            body_file = Path(tmp) / f"bodies-{n}.jsonl"
            body_file.write_text("".join(json.dumps(b) + "\n" for b in bodies))
            script = Path(tmp) / f"script-{n}.lua"
            script.write_text(f"args_path = {json.dumps(path)}\n" + SCRIPT)
            processes.append(subprocess.Popen(
                [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s",
                 str(script), url, "--", str(body_file)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = [p.communicate()[0] for p in processes]
    failed = [out for p, out in zip(processes, outputs, strict=True) if p.returncode != 0]
    if failed:
        raise RuntimeError(f"wrk failed: {failed[0][-500:]}")
    return [parse(out) for out in outputs]
