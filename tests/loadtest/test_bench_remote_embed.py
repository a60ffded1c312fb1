"""``make bench-remote-embed`` end to end on a few texts: a real Triton, infinity-emb and three
gateways; every side's figures and the ratios land in the JSON."""

from __future__ import annotations

import json
from pathlib import Path

from support.infinity import infinity_or_skip

from loadtest.bench.remote_embed import SIDES, main, table


def test_end_to_end_on_a_real_stack(tmp_path: Path) -> None:
    infinity_or_skip()
    out = tmp_path / "results"
    main(["--rounds", "2", "--texts", "8", "--batch", "4", "--searches", "3",
          "--out", str(out)])  # the exit code is the targets'; they are the bench's business
    [path] = out.glob("bench-remote-embed-*.json")
    report = json.loads(path.read_text())
    for side in SIDES:
        assert report[side]["search"]["n"] == 6
        assert 0 < report[side]["search"]["p50_ms"] <= report[side]["search"]["p99_ms"]
    assert report["triton"]["query_encoder"] == "local"
    assert report["triton_served"]["query_encoder"] == "embedder_query"
    assert report["remote"]["query_encoder"] == "remote"
    assert report["remote"]["ingest_texts_per_s"] > 0 and report["ingest_ratio"] > 0
    assert report["remote_attempts"]["requests"] > 0  # the remote side really went remote
    assert report["server_direct"]["n"] == 6
    assert isinstance(report["targets"]["ingest_met"], bool)
    assert "infinity-emb" in table(report)
