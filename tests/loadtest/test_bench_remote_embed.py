"""``make bench-remote-embed`` end to end on a few texts: a real Triton, infinity-emb and four
gateways (the fourth run from a ``--before`` checkout, here this one); every side's figures and
the ratios land in the JSON, with each search's query embedding as its gateway timed it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.infinity import infinity_or_skip

from gateway.settings import ROOT
from loadtest.bench.remote_embed import BEFORE, SIDES, main, table


def test_end_to_end_on_a_real_stack(tmp_path: Path) -> None:
    infinity_or_skip()
    out = tmp_path / "results"
    # The exit code is the targets'; they are the bench's business.
    main(["--rounds", "2", "--texts", "8", "--batch", "4", "--searches", "3",
          "--before", str(ROOT), "--out", str(out)])
    [path] = out.glob("bench-remote-embed-*.json")
    report = json.loads(path.read_text())
    for side in (*SIDES, BEFORE):
        assert report[side]["search"]["n"] == 6
        assert 0 < report[side]["search"]["p50_ms"] <= report[side]["search"]["p99_ms"]
    assert report["triton"]["query_encoder"] == "local"
    assert report["triton_served"]["query_encoder"] == "embedder_query"
    assert report["remote"]["query_encoder"] == "remote"
    assert report["remote"]["ingest_texts_per_s"] > 0 and report["ingest_ratio"] > 0
    assert report["remote_attempts"]["requests"] > 0  # the remote side really went remote
    assert report[f"{BEFORE}_attempts"]["requests"] > 0  # and so did the --before gateway
    assert report[BEFORE]["ingest_texts_per_s"] > 0
    for side in ("remote", BEFORE):  # the server's own p50 taken off
        assert report[side]["gateway_share_p50_ms"] == round(
            report[side]["search"]["p50_ms"] - report["server_direct"]["p50_ms"], 3)
    for side in (*SIDES, BEFORE):  # each search's query embedding, timed by its gateway
        figures = report[side]
        assert figures["query_embeddings"] == 6, (side, figures)
        assert 0 < figures["embed_mean_ms"] < figures["search_mean_ms"]
        assert figures["rest_mean_ms"] == pytest.approx(
            figures["search_mean_ms"] - figures["embed_mean_ms"], abs=0.002)
    assert report["remote"]["rest_delta_mean_ms"] == pytest.approx(
        report["remote"]["rest_mean_ms"] - report["triton"]["rest_mean_ms"], abs=0.002)
    assert report["args"]["infinity_engine"] == "optimum"
    assert report["server_direct"]["n"] == 6
    assert isinstance(report["targets"]["ingest_met"], bool)
    assert "infinity-emb" in table(report) and "--before" in table(report)
