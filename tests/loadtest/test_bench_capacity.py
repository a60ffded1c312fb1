"""bench-capacity on a tiny population: the figures it reports are there and consistent."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.bench import capacity


def test_capacity_reports_bytes_and_reloads(tmp_path: Path, postgres_url: str) -> None:
    capacity.main(["--users", "3", "--per-user", "50", "--large", "400", "--repeats", "3",
                   "--hnsw-rows", "1500", "--out", str(tmp_path), "--store-url", postgres_url])
    [written] = tmp_path.glob("capacity-*.json")
    report = json.loads(written.read_text())
    sqlite = report["stores"]["sqlite"]
    assert sqlite["memories"] == 3 * 50 + 400
    assert sqlite["reload_large_user"]["memories"] == 400
    assert sqlite["reload_large_user"]["vector_bytes"] == 400 * 384 * 4
    # a memory on disk holds at least its float32 vector
    assert sqlite["bytes_per_memory"] > 384 * 4
    postgres = report["stores"]["postgres"]
    assert postgres["memories"] == sqlite["memories"]
    assert postgres["reload_large_user"] == postgres["reload_large_user"] | {
        "memories": 400, "vector_bytes": 400 * 384 * 4}
    assert postgres["bytes_per_memory"] > 384 * 4 and report["reload_postgres_over_sqlite"] > 0
    index = report["index"]
    assert index["exact_bytes_per_vector"] >= 384 * 4
    assert index["hnsw_graphs"] == 1 and index["hnsw_graph_bytes_per_vector"] > 0
