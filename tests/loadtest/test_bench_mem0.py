"""``make bench-mem0`` end to end on a tiny population: Mem0 OSS in this process, a real
Triton and gateway, the same texts and queries on both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.bench.mem0 import main


def test_side_by_side_on_a_real_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("MEM0_TELEMETRY", "False"), ("HF_HUB_OFFLINE", "1"),
                        ("OPENAI_API_KEY", "unused")):  # what the bench sets, undone after
        monkeypatch.setenv(name, value)
    out = tmp_path / "results"
    assert main(["--memories", "30", "--searches", "12", "--blocks", "3", "--clients", "2",
                 "--out", str(out)]) == 0
    [path] = out.glob("mem0-side-by-side-*.json")
    report = json.loads(path.read_text())
    for mode in ("semantic", "hybrid"):
        sides = report[mode]
        assert sides["ours_http"]["n"] == sides["mem0_in_process"]["n"] == 12
        assert sides["p50_ours_over_mem0"] == round(
            sides["ours_http"]["p50_ms"] / sides["mem0_in_process"]["p50_ms"], 2)
    concurrent = report["concurrent"]
    assert concurrent["ours_http_semantic"]["n"] == concurrent["mem0_in_process"]["n"] == 120
    assert report["mem0_adds_per_s"] > 0
