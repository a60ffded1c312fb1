"""PNG plots of one or more runs: latency percentiles, throughput and error rate over time,
and p99 against throughput for step-load runs. Several runs share axes so "with" and "without
admission control" compare at a glance."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from loadtest.locust.report import Requests  # noqa: E402


def per_second(requests: Requests) -> dict[str, np.ndarray]:
    """One row per whole second of the run: rates and percentiles of the successful ones."""
    if not len(requests):
        return {k: np.array([]) for k in ("t", "rps", "ok_rps", "error_pct", "p50", "p95", "p99")}
    seconds = np.floor(requests.t).astype(int)
    span = np.arange(0, seconds.max() + 1)
    out: dict[str, list[float]] = {k: [] for k in ("rps", "ok_rps", "error_pct", "p50", "p95",
                                                   "p99")}
    for second in span:
        here = seconds == second
        ok = here & requests.ok
        total = int(here.sum())
        out["rps"].append(total)
        out["ok_rps"].append(int(ok.sum()))
        out["error_pct"].append(100 * (total - int(ok.sum())) / total if total else 0.0)
        for p in (50, 95, 99):
            ms = requests.ms[ok]
            out[f"p{p}"].append(float(np.percentile(ms, p)) if len(ms) else np.nan)
    return {"t": span.astype(float)} | {k: np.asarray(v, dtype=float) for k, v in out.items()}


def plot_runs(runs: dict[str, Requests], out_dir: Path, *, slo_ms: float | None = None
              ) -> list[Path]:
    """latency.png, throughput.png and errors.png for the given runs (label -> requests)."""
    series = {label: per_second(r) for label, r in runs.items()}
    paths = []
    fig, ax = plt.subplots(figsize=(10, 5))
    for label, s in series.items():
        for p, style in (("p50", ":"), ("p95", "--"), ("p99", "-")):
            ax.plot(s["t"], s[p], style, label=f"{label} {p}")
    if slo_ms:
        ax.axhline(slo_ms, color="red", linewidth=0.8, label=f"SLO {slo_ms:g} ms")
    ax.set(xlabel="seconds", ylabel="ms (successful requests)", yscale="log",
           title="Latency percentiles per second")
    ax.legend(fontsize=7, ncol=2)
    paths.append(_save(fig, out_dir / "latency.png"))

    fig, ax = plt.subplots(figsize=(10, 5))
    for label, s in series.items():
        ax.plot(s["t"], s["rps"], "--", label=f"{label} offered")
        ax.plot(s["t"], s["ok_rps"], "-", label=f"{label} successful")
    ax.set(xlabel="seconds", ylabel="requests/s", title="Throughput")
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir / "throughput.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    for label, s in series.items():
        ax.plot(s["t"], s["error_pct"], label=label)
    ax.set(xlabel="seconds", ylabel="% failed (429, 503, timeouts...)", title="Error rate",
           ylim=(0, 100))
    ax.legend(fontsize=7)
    paths.append(_save(fig, out_dir / "errors.png"))
    return paths


def plot_knee(knee: dict, path: Path) -> Path:
    steps = knee["steps"]
    fig, ax = plt.subplots(figsize=(7, 5))
    xs = [s["ok_rps"] for s in steps]
    ys = [s["p99_ms"] if s["p99_ms"] is not None else np.nan for s in steps]
    ax.plot(xs, ys, "o-")
    for s, x, y in zip(steps, xs, ys, strict=True):
        ax.annotate(str(s["users"]), (x, y), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.axhline(knee["slo_ms"], color="red", linewidth=0.8, label=f"SLO {knee['slo_ms']:g} ms")
    if knee["knee"]:
        ax.axvline(knee["knee"]["ok_rps"], color="green", linewidth=0.8,
                   label=f"knee {knee['knee']['ok_rps']:.0f} req/s")
    ax.set(xlabel="successful requests/s", ylabel="p99 ms", yscale="log",
           title="Step load: p99 against throughput (labels: users)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
