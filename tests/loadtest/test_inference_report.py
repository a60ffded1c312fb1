"""The load-test report names every model that did the work: each Triton model (the embedder,
its batcher-free twin, the reranker) and the gateway's own query encoder."""

from __future__ import annotations

from pathlib import Path

from loadtest.locust.inference import (
    ENCODER_ROW,
    encoder_counters,
    encoder_delta,
    parse_triton_stats,
    triton_delta,
)
from loadtest.locust.report import load_requests, summarize
from loadtest.locust.runner import write_summary


def model_stats(name: str, version: str, requests: int, rows: int, executions: int) -> dict:
    """One entry of Triton's ``/v2/models/stats`` answer."""
    return {"name": name, "version": version, "inference_count": rows,
            "execution_count": executions,
            "inference_stats": {"success": {"count": requests, "ns": 0},
                                "fail": {"count": 0, "ns": 0},
                                "queue": {"count": requests, "ns": requests * 1_000_000},
                                "compute_infer": {"count": requests, "ns": requests * 4_000_000}}}


def test_every_model_and_version_is_counted() -> None:
    stats = parse_triton_stats({"model_stats": [
        model_stats("embedder", "1", 2, 40, 2), model_stats("embedder_query", "1", 30, 30, 30),
        model_stats("embedder_query", "2", 10, 10, 10), model_stats("reranker", "1", 0, 0, 0)]})
    assert sorted(stats) == ["embedder", "embedder_query", "reranker"]
    assert stats["embedder_query"]["requests"] == 40  # both versions (a swap mid-run)
    assert stats["embedder"]["rows"] == 40


def test_delta_per_model_survives_a_restart_and_a_model_loaded_mid_run() -> None:
    before = parse_triton_stats({"model_stats": [model_stats("embedder", "1", 50, 500, 10),
                                                 model_stats("embedder_query", "1", 7, 7, 7)]})
    after = parse_triton_stats({"model_stats": [model_stats("embedder", "1", 4, 40, 2),
                                                model_stats("embedder_query", "1", 27, 27, 27),
                                                model_stats("reranker", "1", 3, 30, 3)]})
    delta = triton_delta(before, after)
    assert delta["embedder"]["requests"] == 4  # restarted: counted from zero
    assert delta["embedder"]["mean_batch_rows"] == 20.0
    assert delta["embedder_query"]["requests"] == 20
    assert delta["embedder_query"]["mean_queue_ms"] == 1.0
    assert delta["reranker"]["requests"] == 3


def test_query_encoder_counters_come_from_the_gateway_metrics() -> None:
    def scrape(calls: int, seconds: float) -> str:
        return ("# TYPE memory_query_encoder_seconds histogram\n"
                f'memory_query_encoder_seconds_bucket{{le="+Inf"}} {calls}.0\n'
                f"memory_query_encoder_seconds_count {calls}.0\n"
                f"memory_query_encoder_seconds_sum {seconds}\n"
                "memory_triton_request_seconds_count{model=\"embedder\",outcome=\"ok\"} 9.0\n")

    delta = encoder_delta(encoder_counters(scrape(5, 0.5)), encoder_counters(scrape(25, 1.5)))
    assert delta == {"calls": 20, "mean_compute_ms": 50.0}
    assert encoder_counters("") == {"calls": 0.0, "seconds": 0.0}  # encoder absent: zero


def test_summary_lists_the_twin_and_the_encoder_not_only_the_embedder(tmp_path: Path) -> None:
    """The mixed run's shape: no batch adds (embedder idle), single adds on the twin, searches
    in the gateway. The summary must show the work, not 'Triton requests 0'."""
    log = tmp_path / "requests.csv"
    log.write_text("# started 0\n" + "".join(f"{i / 10:.3f},search,5.0,200,ok\n"
                                             for i in range(50)))
    requests = load_requests(log)
    before = parse_triton_stats({"model_stats": [model_stats("embedder", "1", 3, 300, 3),
                                                 model_stats("embedder_query", "1", 0, 0, 0)]})
    after = parse_triton_stats({"model_stats": [model_stats("embedder", "1", 3, 300, 3),
                                                model_stats("embedder_query", "1", 12, 12, 12)]})
    result = {"admission": "on", "figures": summarize(requests, 0.0, 5.0),
              "gateway": {"shed": {}, "deadline_drops": {}},
              "triton": triton_delta(before, after),
              "query_encoder": {"calls": 37, "mean_compute_ms": 6.5}}
    meta = {"command": "python -m loadtest.locust.runner", "started": "now", "cpus": 2,
            "load": "0.00", "load_text": "test", "gateway_env": {}}
    text = write_summary(tmp_path, "Load test: mixed", meta, {"admission-on": result},
                         {"admission-on": requests}, 100.0).read_text()
    rows = {line.split(" | ")[1]: line for line in text.splitlines()
            if line.startswith("| admission-on | ") and line.count("|") == 8}
    assert rows["Triton `embedder`"].split(" | ")[2] == "0"
    assert rows["Triton `embedder_query`"].split(" | ")[2] == "12"
    assert rows[ENCODER_ROW].split(" | ")[2] == "37"
