"""``make bench-console`` end to end on a small user: a real Triton and gateway with keys
required, signed in through the console's form, every page timed in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench.console import main, pages, table


def test_end_to_end_on_a_real_stack(tmp_path: Path) -> None:
    out = tmp_path / "results"
    main(["--memories", "60", "--requests", "2", "--out", str(out)])  # the target is the bench's
    [path] = out.glob("bench-console-*.json")
    report = json.loads(path.read_text())
    assert set(report["pages"]) == set(pages("id", "cursor"))
    for page in report["pages"].values():
        assert page["requests"] == 2 and 0 < page["p50_ms"] <= page["p99_ms"]
    assert report["worst_p50_ms"] == max(p["p50_ms"] for p in report["pages"].values())
    assert "| search (hybrid, new query) |" in table(report)
