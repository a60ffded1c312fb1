"""``make loadtest-report``: the issue's target figures, all from one command and one stack.

    python -m loadtest.locust.campaign --scenario mixed --slo-ms 100 --duration 45

1. **Knee**: step load without admission control (the system's own capacity): the highest
   successful req/s whose p99 is within the SLO with under 1% failures.
2. **At the knee**: the same users for ``--duration``, with and without admission control.
3. **At 2x the knee**: twice the users (twice the offered req/s), with and without.
4. **Outage** (``--outage-s``, default 5): at the knee with admission control, Triton is
   stopped mid-run and started again; only 429 and 503 may appear, then recovery.

Each run gets a fresh gateway on a copy of the same seeded data and the same warm Triton.
The targets are checked and written at the top of ``summary.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

from loadtest.locust.locust_run import LoadSpec, Steps
from loadtest.locust.report import Requests
from loadtest.locust.runner import (
    RESULTS,
    log,
    machine_meta,
    results_dir,
    run_on_stack,
    write_summary,
)
from loadtest.locust.scenarios import SCENARIOS
from loadtest.locust.stack_runs import SeededStack, seeded_stack


def check_targets(knee: dict, at_2x: dict, outage: dict | None, slo_ms: float) -> list[str]:
    """One markdown line per target: what was required, what was measured, pass or fail."""
    figures = at_2x["figures"]
    p99 = figures["latency_ms"]["p99"]
    kinds = set(figures["failures"])
    lines = [
        f"- p99 of admitted requests at 2x the knee ≤ 2 x SLO ({2 * slo_ms:g} ms): "
        f"{p99} ms — {'PASS' if p99 is not None and p99 <= 2 * slo_ms else 'FAIL'}",
        f"- excess load shed with 429, no timeouts or 5xx: failures {figures['failures'] or 0}"
        f" — {'PASS' if kinds <= {'429 shed'} else 'FAIL'}",
        f"- admitted throughput at 2x ≥ 90% of the knee ({0.9 * knee['ok_rps']:.1f} req/s): "
        f"{figures['ok_rps']:.1f} req/s — "
        f"{'PASS' if figures['ok_rps'] >= 0.9 * knee['ok_rps'] else 'FAIL'}",
    ]
    if outage is not None:
        bad = {k for k in outage["figures"]["failures"] if not k.startswith(("429", "503"))}
        lines.append(f"- during a Triton outage only 429/503: failures "
                     f"{outage['figures']['failures'] or 0} — {'FAIL' if bad else 'PASS'}")
        if "outage" in outage:
            o = outage["outage"]
            after = o["after"]
            recovered = after["requests"] > 0 and after["ok"] >= 0.99 * after["requests"]
            lines.append(
                f"- recovery: Triton stopped at {o['stopped_at_s']} s, ready at "
                f"{o['ready_at_s']} s of the run; statuses while down {o['down']['statuses']}; "
                f"after it was back {after['ok']}/{after['requests']} succeeded — "
                f"{'PASS' if recovered else 'FAIL'}")
    return lines


def outage_figures(log_path: Path, marks: dict[str, float], requests: Requests) -> dict:
    """When Triton was down within the run, and how requests fared before, during, after."""
    started = float(log_path.read_text().split("\n", 1)[0].split()[-1])
    stopped, ready = marks["stopped"] - started, marks["ready"] - started
    phases = {"before": requests.window(0, stopped), "down": requests.window(stopped, ready),
              "after": requests.window(ready + 1.0)}  # a second for gRPC to reconnect
    return {"stopped_at_s": round(stopped, 1), "ready_at_s": round(ready, 1)} | {
        name: {"requests": len(part), "ok": int(part.ok.sum()),
               "statuses": sorted({int(s) for s in part.status})}
        for name, part in phases.items()}


def _outage(stack: SeededStack, at_s: float, down_s: float, done: threading.Event,
            marks: dict[str, float]) -> threading.Thread:
    """Stop Triton at ``at_s`` for ``down_s``. The thread then waits for ``done``: the launcher
    asks Linux to stop Triton when the thread that started it exits (PR_SET_PDEATHSIG is per
    thread), so this thread must outlive the stack."""

    def stop_then_start() -> None:
        time.sleep(at_s)
        log(f"outage: stopping Triton for {down_s:g} s")
        marks["stopped"] = time.time()
        stack.triton.stop()
        time.sleep(down_s)
        stack.triton.start()
        marks["ready"] = time.time()
        log("outage: Triton is back")
        done.wait()

    thread = threading.Thread(target=stop_then_start, daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m loadtest.locust.campaign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS, default="mixed")
    parser.add_argument("--slo-ms", type=float, default=100.0)
    parser.add_argument("--rate", type=float, default=2.0, help="requests/s per user")
    parser.add_argument("--step-users", type=int, default=10)
    parser.add_argument("--step-seconds", type=float, default=15)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--duration", type=float, default=45, help="seconds per fixed run")
    parser.add_argument("--outage-s", type=float, default=5, help="0 skips the outage run")
    parser.add_argument("--seed-users", type=int, default=20)
    parser.add_argument("--seed-memories", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    meta = machine_meta(argv) | {"command": "python -m loadtest.locust.campaign " + " ".join(argv)}
    out = results_dir(args.out, f"campaign-{args.scenario}")
    base = LoadSpec(args.scenario, duration_s=args.duration, rate=args.rate,
                    seed_users=args.seed_users)
    meta["load_text"] = (f"{args.rate:g} req/s per user, fixed runs of {args.duration:g} s, "
                         f"steps of {args.step_users} users x {args.step_seconds:g} s")
    results: dict[str, dict] = {}
    requests: dict[str, Requests] = {}
    stack_closed = threading.Event()
    with tempfile.TemporaryDirectory(prefix="campaign-") as tmp, seeded_stack(
            Path(tmp), out, users=args.seed_users, memories=args.seed_memories) as stack:
        steps = Steps(args.step_users, args.step_seconds, args.steps)
        stepped = LoadSpec(**{**base.__dict__, "steps": steps})
        _, knee_run = run_on_stack(stack, stepped, out / "knee", admission="off",
                                   slo_ms=args.slo_ms)
        knee = knee_run["knee"]["knee"]
        if knee is None:
            log("no step met the SLO; see knee/ — lower --step-users or raise --slo-ms")
            results["knee (step load, admission off)"] = knee_run
            write_summary(out, "Campaign: no knee found", meta, results, requests, args.slo_ms)
            return 1
        plan = [("at knee", knee["users"]), ("at 2x knee", 2 * knee["users"])]
        for name, users in plan:
            for mode in ("on", "off"):
                label = f"{name}, admission {mode}"
                spec = LoadSpec(**{**base.__dict__, "users": users})
                requests[label], results[label] = run_on_stack(
                    stack, spec, out / f"{name.replace(' ', '-')}-{mode}", admission=mode,
                    slo_ms=args.slo_ms)
        outage = None
        if args.outage_s > 0:
            spec = LoadSpec(**{**base.__dict__, "users": knee["users"]})
            marks: dict[str, float] = {}
            _outage(stack, args.duration / 3, args.outage_s, stack_closed, marks)
            label = f"at knee, Triton down {args.outage_s:g} s, admission on"
            requests[label], outage = run_on_stack(stack, spec, out / "outage", admission="on",
                                                   slo_ms=args.slo_ms)
            outage["outage"] = outage_figures(out / "outage" / "requests.csv", marks,
                                              requests[label])
            results[label] = outage
    stack_closed.set()
    results = {"knee (step load, admission off)": knee_run} | results
    users_2x = 2 * knee["users"]
    sections = [
        f"Knee of `{args.scenario}`: **{knee['ok_rps']:.1f} req/s** at {knee['users']} users "
        f"(p99 {knee['p99_ms']:.1f} ms, SLO {args.slo_ms:g} ms); 2x the knee = {users_2x} "
        f"users x {args.rate:g} req/s = {math.ceil(users_2x * args.rate)} req/s offered.", "",
        "Targets (at 2x the knee, admission on):", "",
        *check_targets(knee, results["at 2x knee, admission on"], outage, args.slo_ms), ""]
    summary = write_summary(out, f"Campaign: {args.scenario}", meta, results, requests,
                            args.slo_ms, sections=tuple(sections))
    print(summary.read_text())
    log(f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
