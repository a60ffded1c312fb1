"""Figures from a run's request log: percentiles, throughput, failures by kind, the knee.

Locust's own CSVs give running aggregates (its percentiles over time are a 10 s sliding window
and it stores no p99.9 per interval), so every scenario also writes one line per request and
the figures here are computed exactly from that, over any time window: the steady part of a
fixed run, or each step of a step-load run.

Latency percentiles are over **successful** requests (the ones admitted and answered); what
was refused is counted by kind beside them, so shedding can never make latency look better
without showing up as failures.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PERCENTILES = (50, 95, 99, 99.9)


@dataclass(frozen=True)
class Requests:
    """One run's request log as columns."""

    t: np.ndarray  # seconds since the test started
    name: np.ndarray  # "search", "add", ...
    ms: np.ndarray  # response time
    status: np.ndarray  # HTTP status, 0 when no answer
    kind: np.ndarray  # "ok" or how it failed: "429 shed", "timeout", ...

    def __len__(self) -> int:
        return len(self.t)

    @property
    def ok(self) -> np.ndarray:
        return self.kind == "ok"

    def window(self, start: float = 0.0, end: float = math.inf) -> Requests:
        keep = (self.t >= start) & (self.t < end)
        return Requests(self.t[keep], self.name[keep], self.ms[keep], self.status[keep],
                        self.kind[keep])

    def only(self, names: set[str]) -> Requests:
        keep = np.isin(self.name, list(names))
        return Requests(self.t[keep], self.name[keep], self.ms[keep], self.status[keep],
                        self.kind[keep])


def load_requests(path: Path) -> Requests:
    rows = [line.rstrip("\n").split(",", 4) for line in path.read_text().splitlines()
            if line and not line.startswith("#")]
    rows = [r for r in rows if len(r) == 5]
    if not rows:
        return Requests(*(np.array([], dtype=d) for d in (float, str, float, int, str)))
    t, name, ms, status, kind = zip(*rows, strict=True)
    return Requests(np.array(t, dtype=float), np.array(name), np.array(ms, dtype=float),
                    np.array(status, dtype=int), np.array(kind))


def _pct(ms: np.ndarray, p: float) -> float | None:
    return round(float(np.percentile(ms, p)), 2) if len(ms) else None


def summarize(requests: Requests, start: float = 0.0, end: float | None = None) -> dict:
    """Counts, rates and latency percentiles over ``[start, end)`` of the run."""
    if end is None:
        end = float(requests.t.max()) if len(requests) else start
    part = requests.window(start, end) if len(requests) else requests
    seconds = max(end - start, 1e-9)
    ok_ms = part.ms[part.ok]
    failures = Counter(str(k) for k in part.kind[~part.ok])
    return {
        "window_s": [round(start, 2), round(end, 2)],
        "requests": len(part),
        "ok": int(part.ok.sum()),
        "rps": round(len(part) / seconds, 2),
        "ok_rps": round(len(ok_ms) / seconds, 2),
        "failure_share": round(1 - len(ok_ms) / len(part), 4) if len(part) else 0.0,
        "latency_ms": {f"p{p:g}": _pct(ok_ms, p) for p in PERCENTILES}
        | {"max": _pct(ok_ms, 100)},
        "failures": dict(failures.most_common()),
        "by_name": {str(n): {"requests": int((part.name == n).sum()),
                             "ok": int(((part.name == n) & part.ok).sum()),
                             "p99_ms": _pct(part.ms[(part.name == n) & part.ok], 99)}
                    for n in sorted(set(part.name.tolist()))},
    }


def step_windows(step_users: int, step_seconds: float, steps: int
                 ) -> list[tuple[int, float, float]]:
    """(users, start_s, end_s) of each step of a step-load run (``loadtest/locust/shapes.py``)."""
    return [((i + 1) * step_users, i * step_seconds, (i + 1) * step_seconds)
            for i in range(steps)]


def find_knee(requests: Requests, windows: list[tuple[int, float, float]], *, slo_ms: float,
              settle: float = 0.25, max_failure_share: float = 0.01) -> dict:
    """Per-step figures, and the knee: the step with the most successful requests/s whose p99
    is within ``slo_ms`` and whose failures stay under ``max_failure_share``.

    The first ``settle`` of each step is left out (users still starting, queues still filling).
    """
    steps = []
    for users, start, end in windows:
        figures = summarize(requests, start + settle * (end - start), end)
        p99 = figures["latency_ms"]["p99"]
        steps.append({"users": users, "rps": figures["rps"], "ok_rps": figures["ok_rps"],
                      "p99_ms": p99, "failure_share": figures["failure_share"],
                      "within_slo": p99 is not None and p99 <= slo_ms
                      and figures["failure_share"] <= max_failure_share})
    good = [s for s in steps if s["within_slo"]]
    knee = max(good, key=lambda s: s["ok_rps"]) if good else None
    return {"slo_ms": slo_ms, "steps": steps, "knee": knee}


def _row(label: str, s: dict) -> str:
    lat = s["latency_ms"]
    cells = [label, f"{s['rps']:.1f}", f"{s['ok_rps']:.1f}"] + [
        "–" if lat[f"p{p:g}"] is None else f"{lat[f'p{p:g}']:.1f}" for p in PERCENTILES]
    cells.append(f"{100 * s['failure_share']:.1f}%")
    cells.append(", ".join(f"{k}: {v}" for k, v in s["failures"].items()) or "none")
    return "| " + " | ".join(cells) + " |"


def markdown_table(runs: dict[str, dict]) -> str:
    head = ("| run | offered req/s | ok req/s | p50 ms | p95 ms | p99 ms | p99.9 ms | failed "
            "| failures by kind |\n|---|---:|---:|---:|---:|---:|---:|---:|---|")
    return "\n".join([head] + [_row(label, s) for label, s in runs.items()])


def knee_table(knee: dict) -> str:
    lines = [f"SLO: p99 ≤ {knee['slo_ms']:g} ms and ≤ 1% failures.", "",
             "| users | offered req/s | ok req/s | p99 ms | failed | within SLO |",
             "|---:|---:|---:|---:|---:|:---:|"]
    for s in knee["steps"]:
        p99 = "–" if s["p99_ms"] is None else f"{s['p99_ms']:.1f}"
        lines.append(f"| {s['users']} | {s['rps']:.1f} | {s['ok_rps']:.1f} | {p99} | "
                     f"{100 * s['failure_share']:.1f}% | {'yes' if s['within_slo'] else 'no'} |")
    found = knee["knee"]
    lines += ["", f"**Knee: {found['ok_rps']:.1f} req/s** ({found['users']} users, p99 "
              f"{found['p99_ms']:.1f} ms)." if found else "", "" if found else
              "**No step met the SLO**: lower the first step or raise the SLO."]
    return "\n".join(line for line in lines if line is not None)
