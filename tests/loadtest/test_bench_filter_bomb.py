"""``make bench-filter-bomb`` end to end on a tiny bomb: a real Triton and gateway, the bomb
refused with a 422, answer times and /healthz latencies (idle and meanwhile) in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench.filter_bomb import main


def test_end_to_end_on_a_real_stack(tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["--memories", "20", "--keys", "600", "--values", "4", "--scales", "1,2",
                 "--under-cap-keys", "300", "--repeats", "2", "--out", str(out)]) == 0
    [path] = out.glob("bench-filter-bomb-*.json")
    report = json.loads(path.read_text())
    assert [b["keys"] for b in report["bombs"]] == [600, 1200, 300]
    for entry in report["bombs"]:
        assert entry["statuses"] == [422]
        assert "more than" in entry["detail"]
        assert entry["answer"]["n"] == 2
        assert entry["healthz_meanwhile"]["n"] >= 1
        assert entry["body_bytes"] > 0
    assert report["bombs"][1]["body_bytes"] > report["bombs"][0]["body_bytes"]
    assert report["healthz_idle"]["n"] > 0
    assert isinstance(report["target_met"], bool)
    assert set(report["load_average"]) == {"start", "end"}
