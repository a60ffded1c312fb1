"""``make bench-jobs`` end to end on a tiny population: a real Triton and gateway, a merge that
finds every planted duplicate, a compress that folds old memories, latencies on both sides
(idle searches matched to those during the jobs)."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench.jobs import main


def test_end_to_end_on_a_real_stack(tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["--users", "2", "--per-user", "150", "--rounds", "1", "--searches", "10",
                 "--match-idle", "--out", str(out)]) == 0
    [path] = out.glob("bench-jobs-*.json")
    report = json.loads(path.read_text())
    [round_] = report["rounds"]
    merge, compress = round_["jobs"]
    assert merge["kind"] == "merge" and merge["status"] == "done"
    assert report["planted_duplicates"] > 0
    assert merge["progress"]["merged"] == report["planted_duplicates"]
    assert compress["kind"] == "compress" and compress["status"] == "done"
    assert compress["progress"]["archived"] > 0
    assert report["during_jobs"]["n"] == sum(
        (j["searches_during"] or {}).get("n", 0) for j in round_["jobs"])
    assert report["idle"]["n"] == 10 + report["during_jobs"]["n"]  # --match-idle
    assert set(report["load_average"]) == {"start", "end"}
    assert report["p99_ratio_during_over_idle"] == round(
        report["during_jobs"]["p99_ms"] / report["idle"]["p99_ms"], 2)
