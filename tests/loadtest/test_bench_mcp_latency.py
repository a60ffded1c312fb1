"""``make bench-mcp`` end to end on a few pairs: a real Triton and gateway, the MCP server
spawned over stdio, and the same calls through the HTTP API, both timed in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench.mcp_latency import main, table


def test_end_to_end_on_a_real_stack(tmp_path: Path) -> None:
    out = tmp_path / "results"
    main(["--rounds", "2", "--pairs", "2", "--out", str(out)])  # the target is the bench's
    [path] = out.glob("bench-mcp-*.json")
    report = json.loads(path.read_text())
    for side in ("mcp_stdio", "http_api"):
        assert report[side]["pairs"] == 4
        assert 0 < report[side]["p50_ms"] <= report[side]["p99_ms"]
    assert report["p50_ratio"] > 0
    assert isinstance(report["target_met"], bool)
    assert "MCP over stdio" in table(report)
