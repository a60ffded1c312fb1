"""One headless Locust run against a loopback gateway, and the figures drawn from it.

Locust runs in its own process: it monkey-patches everything with gevent on import, which this
process (the stack, the seeder, matplotlib) must not be. The run is always bounded: Locust's
own ``--run-time`` (or the step shape's end) plus a hard subprocess timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway.settings import ROOT
from loadtest.locust.report import Requests, load_requests, step_windows, summarize
from loadtest.locust.seed import require_loopback

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
MAX_DURATION_S = 3600  # no run, stepped or fixed, lasts longer than this


@dataclass(frozen=True)
class Steps:
    users: int = 10
    seconds: float = 15.0
    count: int = 8

    @property
    def windows(self) -> list[tuple[int, float, float]]:
        return step_windows(self.users, self.seconds, self.count)

    @property
    def duration_s(self) -> float:
        return self.seconds * self.count


@dataclass(frozen=True)
class LoadSpec:
    scenario: str
    users: int = 20
    duration_s: float = 30.0
    rate: float = 2.0  # requests/s per user
    seed_users: int = 20
    timeout_s: float = 10.0  # client timeout
    steps: Steps | None = None  # step load (knee finding) instead of a fixed user count
    env: tuple[tuple[str, str], ...] = ()  # extra LOADTEST_* settings for the scenario

    @property
    def total_s(self) -> float:
        return self.steps.duration_s if self.steps else self.duration_s

    def steady_window(self) -> tuple[float, float]:
        """The part of a fixed run the headline figures use: after users have started and
        queues filled (20% of the run, at most 5 s), before they stop (the last second)."""
        warmup = min(5.0, 0.2 * self.duration_s)
        return warmup, max(warmup + 1.0, self.duration_s - 1.0)


def locust_command(url: str, spec: LoadSpec, out: Path) -> list[str]:
    files = str(SCENARIO_DIR / f"{spec.scenario}.py")
    if spec.steps:
        files += "," + str(Path(__file__).with_name("shapes.py"))
    command = [sys.executable, "-m", "locust", "-f", files, "--headless", "--host", url,
               "--csv", str(out / "locust"), "--csv-full-history", "--html",
               str(out / "report.html"), "--only-summary", "--stop-timeout", "5",
               "--loglevel", "WARNING", "--logfile", str(out / "locust.log"),
               "--exit-code-on-error", "0"]
    if not spec.steps:
        spawn = max(1.0, spec.users / 2)  # everyone running within ~2 s
        command += ["-u", str(spec.users), "-r", f"{spawn:g}", "-t", f"{spec.duration_s:g}s"]
    return command


def run_locust(url: str, spec: LoadSpec, out: Path, *, quiet: bool = False) -> Requests:
    """Run the scenario; leaves Locust's CSVs, HTML report and the request log in ``out``."""
    require_loopback(url)
    if spec.total_s > MAX_DURATION_S:
        raise SystemExit(f"error: a run may last at most {MAX_DURATION_S} s")
    out.mkdir(parents=True, exist_ok=True)
    log = out / "requests.csv"
    log.unlink(missing_ok=True)
    env = dict(os.environ) | dict(spec.env) | {
        "LOADTEST_RATE": str(spec.rate),
        "LOADTEST_SEED_USERS": str(spec.seed_users),
        "LOADTEST_TIMEOUT_S": str(spec.timeout_s),
        "LOADTEST_REQUEST_LOG": str(log),
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    if spec.steps:
        env |= {"LOADTEST_STEP_USERS": str(spec.steps.users),
                "LOADTEST_STEP_SECONDS": str(spec.steps.seconds),
                "LOADTEST_STEPS": str(spec.steps.count)}
    with (out / "locust.stdout").open("wb") as stdout:
        subprocess.run(locust_command(url, spec, out), env=env, cwd=ROOT, check=True,
                       stdout=stdout, stderr=subprocess.STDOUT,
                       timeout=spec.total_s + 90)
    if not quiet:
        print(f"[loadtest] {spec.scenario}: Locust output in {out}", file=sys.stderr)
    return load_requests(log)


def headline(requests: Requests, spec: LoadSpec) -> dict:
    """The figures a fixed run is judged by (its steady part), or a stepped run's whole."""
    if spec.steps:
        return summarize(requests, 0.0, spec.total_s)
    return summarize(requests, *spec.steady_window())
