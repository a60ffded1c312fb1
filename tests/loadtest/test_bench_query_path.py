"""``loadtest.bench.query_path``: both precisions of the served version, side by side."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench.query_path import main


def test_it_times_fp32_and_int8_queries_and_writes_json(tmp_path: Path, capsys) -> None:
    assert main(["--count", "12", "--out", str(tmp_path)]) == 0
    [path] = tmp_path.glob("query-path-*.json")
    report = json.loads(path.read_text())
    assert json.loads(capsys.readouterr().out) == report  # stdout is the same JSON
    [run] = report["runs"]
    assert run["dimension"] == 384 and run["queries"] == 12
    assert set(run["profiles"]) == {"fp32", "int8"}
    assert all(p["p50_ms"] > 0 for p in run["profiles"].values())
    assert 0.97 < run["int8_vs_fp32"]["cosine_min"] < 1.0  # another graph, close to fp32
    assert run["int8_vs_fp32"]["speedup_p50"] > 0


def test_http_profiles_take_turns_and_say_their_precision(tmp_path: Path, capsys) -> None:
    assert main(["--http", "--memories", "20", "--count", "4", "--out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    http = report["http"]
    assert list(http["query_precision"].values()) == ["fp32", "int8", "int8"]
    assert len(http["profiles"]) == 4
    assert all(p["p50_ms"] > 0 for p in http["profiles"].values())
    assert http["profiles"]["before (fp32 query, no reordering)"]["p50_vs_before"] == 1.0
