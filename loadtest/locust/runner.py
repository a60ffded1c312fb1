"""``make loadtest``: a headless Locust scenario against a local stack, with a written report.

    python -m loadtest.locust.runner --scenario mixed --users 40 --duration 30
    python -m loadtest.locust.runner --scenario mixed --admission both  # with and without, same run
    python -m loadtest.locust.runner --scenario search --knee --step-users 10 --steps 8 --slo-ms 100

Starts the bundled Triton and gateway processes (the launcher ``make run`` uses), seeds them,
runs Locust bounded in time against 127.0.0.1 only, and writes into
``loadtest/results/<timestamp>-<scenario>/``: Locust's CSV stats and HTML report per run,
the per-request log, PNG plots (latency percentiles, throughput, error rate; p99 vs throughput
per step with ``--knee``) and ``summary.md`` / ``summary.json``. ``--url`` aims at a gateway
that is already running (loopback only) instead of starting one.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtest.locust.inference import (
    encoder_counters,
    encoder_delta,
    triton_delta,
    triton_stats,
    work_table,
)
from loadtest.locust.locust_run import LoadSpec, Steps, headline, run_locust
from loadtest.locust.plots import plot_knee, plot_runs
from loadtest.locust.report import Requests, find_knee, knee_table, markdown_table
from loadtest.locust.scenarios import SCENARIOS
from loadtest.locust.seed import require_loopback
from loadtest.locust.stack_runs import SeededStack, gateway_counters, scrape, seeded_stack
from loadtest.paths import RESULTS


def log(message: str) -> None:
    print(f"[loadtest] {message}", file=sys.stderr, flush=True)


def results_dir(root: Path, name: str) -> Path:
    out = root / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{name}"
    out.mkdir(parents=True, exist_ok=False)
    return out


def run_on_stack(stack: SeededStack, spec: LoadSpec, run_dir: Path, *, admission: str,
                 slo_ms: float) -> tuple[Requests, dict]:
    """One gateway process, one Locust run; figures, shed counts and what each model did."""
    extra = {"LOADTEST_TRITON_HTTP": stack.triton.http_url,
             "LOADTEST_SWAP_AT_S": f"{spec.total_s / 3:g}"}
    spec = LoadSpec(**{**spec.__dict__, "env": tuple({**dict(spec.env), **extra}.items())})
    with stack.gateway(run_dir, admission=admission) as url:
        before = triton_stats(stack.triton.http_url)
        encoder_before = encoder_counters(scrape(url))
        log(f"{spec.scenario}, admission {admission}: {spec.users} users x {spec.rate:g} req/s"
            f" for {spec.total_s:g} s against {url}")
        requests = run_locust(url, spec, run_dir, quiet=True)
        metrics = scrape(url)
        result: dict[str, Any] = {
            "admission": admission, "figures": headline(requests, spec),
            "gateway": gateway_counters(metrics),
            "triton": triton_delta(before, triton_stats(stack.triton.http_url)),
            "query_encoder": encoder_delta(encoder_before, encoder_counters(metrics))}
    if spec.steps:
        result["knee"] = find_knee(requests, spec.steps.windows, slo_ms=slo_ms)
        plot_knee(result["knee"], run_dir / "knee.png")
        plot_runs({"step load": requests}, run_dir, slo_ms=slo_ms)
    return requests, result


def write_summary(out: Path, title: str, meta: dict, results: dict[str, dict],
                  requests: dict[str, Requests], slo_ms: float, *,
                  sections: tuple[str, ...] = ()) -> Path:
    """summary.md (tables, knee, extra ``sections`` first), summary.json and the plots."""
    plot_runs(requests, out, slo_ms=slo_ms)
    lines = [f"# {title}", "", *sections, f"Command: `{meta['command']}`  ",
             f"Started: {meta['started']} on {meta['cpus']} CPUs "
             f"(load average {meta['load']} at start)  ",
             f"Load: {meta['load_text']}  ",
             "Gateway settings from the environment (admission on; off runs set "
             "MEMORY_ADMISSION_ENABLED=false): "
             + (", ".join(f"`{k}={v}`" for k, v in meta["gateway_env"].items()) or "defaults"),
             "",
             "Latency is over successful requests; refused ones are counted by kind beside it.",
             "", markdown_table({label: r["figures"] for label, r in results.items()}), ""]
    lines += ["| run | shed (class/reason: count) | deadline drops |", "|---|---|---|"]
    for label, r in results.items():
        shed = ", ".join(f"{k}: {v:g}" for k, v in r["gateway"]["shed"].items()) or "none"
        drops = ", ".join(f"{k}: {v:g}" for k, v in r["gateway"]["deadline_drops"].items())
        lines.append(f"| {label} | {shed} | {drops or 'none'} |")
    lines += ["", "Inference: every Triton model served (means per request) and the gateway's "
              "own query encoder (means per call; coalesced queries share a call).", "",
              *work_table(results)]
    if any("triton" not in r for r in results.values()):
        lines.append("\nTriton's statistics are read only on a stack the runner starts "
                     "(not with `--url`).")
    for label, r in results.items():
        if "knee" in r:
            lines += ["", f"## Knee ({label})", "", knee_table(r["knee"])]
    lines += ["", "Plots: latency.png, throughput.png, errors.png"
              + (", <run>/knee.png" if any("knee" in r for r in results.values()) else "")
              + ". Locust CSV + HTML per run in its folder.", ""]
    (out / "summary.md").write_text("\n".join(lines))
    (out / "summary.json").write_text(json.dumps({"meta": meta, "runs": results}, indent=2,
                                                  default=str))
    return out / "summary.md"


def machine_meta(argv: list[str]) -> dict:
    command = ["python -m loadtest.locust.runner", *argv]
    return {"command": " ".join(shlex.quote(a) for a in command),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            # Gateway settings given through the environment: part of what was measured.
            "gateway_env": {k: v for k, v in sorted(os.environ.items())
                            if k.startswith(("MEMORY_ADMISSION_", "MEMORY_DEADLINE_"))}}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m loadtest.locust.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=SCENARIOS, default="mixed")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=30, help="seconds")
    parser.add_argument("--rate", type=float, default=2.0, help="requests/s per user")
    parser.add_argument("--admission", choices=["on", "off", "both"], default="on")
    parser.add_argument("--slo-ms", type=float, default=100.0)
    parser.add_argument("--knee", action="store_true", help="step load; report the knee")
    parser.add_argument("--step-users", type=int, default=10)
    parser.add_argument("--step-seconds", type=float, default=15)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seed-users", type=int, default=20)
    parser.add_argument("--seed-memories", type=int, default=100, help="per user")
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout, s")
    parser.add_argument("--url", help="a running gateway on loopback instead of a new stack")
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    steps = Steps(args.step_users, args.step_seconds, args.steps) if args.knee else None
    spec = LoadSpec(args.scenario, users=args.users, duration_s=args.duration, rate=args.rate,
                    seed_users=args.seed_users, timeout_s=args.timeout, steps=steps)
    out = results_dir(args.out, args.scenario)
    meta = machine_meta(argv)
    meta["load_text"] = (f"steps of {steps.users} users to {steps.users * steps.count}, "
                         f"{steps.seconds:g} s each" if steps else
                         f"{spec.users} users, {spec.duration_s:g} s (figures from "
                         f"{spec.steady_window()[0]:g} to {spec.steady_window()[1]:g} s)") + (
        f", {spec.rate:g} req/s per user, client timeout {spec.timeout_s:g} s, "
        f"seeded {args.seed_users} users x {args.seed_memories} memories")
    results: dict[str, dict] = {}
    requests: dict[str, Requests] = {}
    if args.url:
        require_loopback(args.url)  # before the first scrape
        encoder_before = encoder_counters(scrape(args.url))
        requests["target"] = run_locust(args.url, spec, out / "target")
        metrics = scrape(args.url)
        results["target"] = {"admission": "as configured", "figures": headline(
            requests["target"], spec), "gateway": gateway_counters(metrics),
            "query_encoder": encoder_delta(encoder_before, encoder_counters(metrics))}
    else:
        modes = ["on", "off"] if args.admission == "both" else [args.admission]
        with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp, seeded_stack(
                Path(tmp), out, users=args.seed_users, memories=args.seed_memories) as stack:
            for mode in modes:
                label = f"admission-{mode}"
                requests[label], results[label] = run_on_stack(
                    stack, spec, out / label, admission=mode, slo_ms=args.slo_ms)
    summary = write_summary(out, f"Load test: {args.scenario}", meta, results, requests,
                            args.slo_ms)
    print(summary.read_text())
    log(f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
