"""Figures from request logs: exact percentiles, failures by kind, the knee, plots, tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loadtest.locust.campaign import check_targets
from loadtest.locust.plots import plot_knee, plot_runs
from loadtest.locust.report import (
    find_knee,
    knee_table,
    load_requests,
    markdown_table,
    step_windows,
    summarize,
)


def write_log(path: Path, rows: list[tuple[float, str, float, int, str]]) -> Path:
    lines = ["# started 0"] + [f"{t:.4f},{n},{ms:.3f},{s},{k}" for t, n, ms, s, k in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def stepped_rows() -> list[tuple[float, str, float, int, str]]:
    """Three 10 s steps: 10, 20, 30 req/s; latency 20 ms, then 50 ms, then 400 ms."""
    rows = []
    for step, (rate, ms) in enumerate([(10, 20.0), (20, 50.0), (30, 400.0)]):
        for i in range(rate * 10):
            t = step * 10 + i / rate
            rows.append((t, "search", ms, 200, "ok"))
    return rows


def test_summary_percentiles_and_failures(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    latencies = rng.exponential(30, 2000)
    rows = [(i / 100, "search", float(ms), 200, "ok") for i, ms in enumerate(latencies)]
    rows += [(5.0, "add", 1.0, 429, "429 shed")] * 30 + [(6.0, "add", 10_000, 0, "timeout")] * 2
    requests = load_requests(write_log(tmp_path / "r.csv", rows))
    figures = summarize(requests, 0, 20)
    assert figures["requests"] == 2032 and figures["ok"] == 2000
    for p in (50, 99, 99.9):
        assert abs(figures["latency_ms"][f"p{p:g}"] - np.percentile(latencies, p)) < 0.01
    assert figures["failures"] == {"429 shed": 30, "timeout": 2}
    assert figures["ok_rps"] == 100.0
    assert figures["by_name"]["add"] == {"requests": 32, "ok": 0, "p99_ms": None}
    table = markdown_table({"run": figures})
    assert "429 shed: 30, timeout: 2" in table and "| run | 101.6 | 100.0 |" in table


def test_knee_is_the_busiest_step_within_the_slo(tmp_path: Path) -> None:
    requests = load_requests(write_log(tmp_path / "r.csv", stepped_rows()))
    knee = find_knee(requests, step_windows(5, 10, 3), slo_ms=100)
    assert [s["within_slo"] for s in knee["steps"]] == [True, True, False]
    assert knee["knee"]["users"] == 10 and abs(knee["knee"]["ok_rps"] - 20) < 0.5
    assert "**Knee: 20.0 req/s** (10 users" in knee_table(knee)
    strict = find_knee(requests, step_windows(5, 10, 3), slo_ms=10)
    assert strict["knee"] is None and "No step met the SLO" in knee_table(strict)


def test_failures_keep_a_step_out_of_the_knee(tmp_path: Path) -> None:
    rows = stepped_rows()
    rows += [(15.0 + i / 100, "search", 1.0, 429, "429 shed") for i in range(100)]
    requests = load_requests(write_log(tmp_path / "r.csv", rows))
    knee = find_knee(requests, step_windows(5, 10, 3), slo_ms=100)
    assert knee["knee"]["users"] == 5  # step 2 shed a third of its load


def test_plots_are_written(tmp_path: Path) -> None:
    requests = load_requests(write_log(tmp_path / "r.csv", stepped_rows()))
    paths = plot_runs({"a": requests, "b": requests.window(0, 10)}, tmp_path, slo_ms=100)
    paths.append(plot_knee(find_knee(requests, step_windows(5, 10, 3), slo_ms=100),
                           tmp_path / "knee.png"))
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_targets_are_judged_on_admitted_requests() -> None:
    knee = {"ok_rps": 100.0}
    good = {"figures": {"latency_ms": {"p99": 150.0}, "failures": {"429 shed": 500},
                        "ok_rps": 95.0}}
    lines = check_targets(knee, good, None, slo_ms=100)
    assert all(line.endswith("PASS") for line in lines)
    bad = {"figures": {"latency_ms": {"p99": 900.0}, "failures": {"timeout": 3},
                       "ok_rps": 50.0}}
    assert all(line.endswith("FAIL") for line in check_targets(knee, bad, None, slo_ms=100))
