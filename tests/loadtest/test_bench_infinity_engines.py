"""``python -m loadtest.bench.infinity_engines`` end to end on a few texts: both of
infinity-emb's engines up at once, each one's figures and the ratios in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from support.infinity import infinity_or_skip

from loadtest.bench.infinity_engines import main
from loadtest.infinity import ENGINES


def test_both_engines_measured_side_by_side(tmp_path: Path) -> None:
    infinity_or_skip()
    out = tmp_path / "results"
    assert main(["--rounds", "2", "--texts", "8", "--batch", "4", "--searches", "3",
                 "--out", str(out)]) == 0
    [path] = out.glob("bench-infinity-engines-*.json")
    report = json.loads(path.read_text())
    for engine in ENGINES:
        single = report[engine]["single"]
        assert single["n"] == 6 and 0 < single["p50_ms"] <= single["p99_ms"]
        assert report[engine]["batch_texts_per_s"] > 0
    assert report["single_p50_ratio_onnx_to_torch"] == round(
        report["optimum"]["single"]["p50_ms"] / report["torch"]["single"]["p50_ms"], 3)
    assert report["batch_rate_ratio_onnx_to_torch"] > 0
