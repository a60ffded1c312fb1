"""``make bench-slow-bodies`` end to end on a small scale: a real Triton and a keyed gateway, a
few slow-body connections without a key, latencies on both sides and the JSON's shape."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench.slow_bodies import main


def test_end_to_end_on_a_real_stack(tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["--connections", "8", "--memories", "20", "--rounds", "1", "--searches", "10",
                 "--drip-s", "0.2", "--out", str(out)]) == 0
    [path] = out.glob("bench-slow-bodies-*.json")
    report = json.loads(path.read_text())
    for side in ("idle", "under_attack"):
        assert report[side]["n"] == 10
        assert {"p50_ms", "p90_ms", "p99_ms", "max_ms"} <= set(report[side])
    assert report["p99_ratio"] == round(
        report["under_attack"]["p99_ms"] / report["idle"]["p99_ms"], 2)
    assert report["target_met"] == (report["p99_ratio"] <= report["target_ratio"])
    attacker = report["attacker"]
    assert attacker["connections_opened"] >= 8
    assert set(attacker["answers"]) == {"401"}  # refused before the body, never admitted
    [round_] = report["rounds"]
    assert set(round_) == {"idle", "under_attack", "attacker"}
