"""What every model did during a run: each Triton model's statistics and the gateway's own
query encoder, as the difference of counters read before and after it.

The work is spread, so no one model tells it: batch adds go to ``embedder`` (dynamic
batcher), single adds to its batcher-free twin ``embedder_query``, search queries to the
encoder inside the gateway (or the twin when it cannot serve), re-ranked searches to
``reranker``. Reading ``embedder`` alone made a mixed run report no inference at all.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

_TRITON_FIELDS = ("requests", "failed", "rows", "executions", "queue_ns", "compute_ns")
# The gateway's encoder histogram (gateway.metrics.Metrics.query_encoder_latency): one
# observation per run of the encoder, several coalesced queries sharing a run.
_ENCODER = re.compile(r"memory_query_encoder_seconds_(count|sum) (\S+)")
ENCODER_ROW = "query encoder (gateway)"


def parse_triton_stats(payload: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Counters per model, summed over its loaded versions, from ``/v2/models/stats``."""
    out: dict[str, dict[str, int]] = {}
    for stats in payload.get("model_stats", []):
        inference = stats["inference_stats"]
        counts = {"requests": int(inference["success"]["count"]),
                  "failed": int(inference["fail"]["count"]),
                  "rows": int(stats["inference_count"]),
                  "executions": int(stats["execution_count"]),
                  "queue_ns": int(inference["queue"]["ns"]),
                  "compute_ns": int(inference["compute_infer"]["ns"])}
        model = out.setdefault(stats["name"], dict.fromkeys(_TRITON_FIELDS, 0))
        for key, value in counts.items():
            model[key] += value
    return out


def triton_stats(http_url: str) -> dict[str, dict[str, int]]:
    """Every loaded model's counters, read from Triton's HTTP endpoint."""
    with urllib.request.urlopen(f"{http_url}/v2/models/stats", timeout=10) as response:
        return parse_triton_stats(json.load(response))


def model_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """What one model did: requests, mean batch, mean queue and compute time per request."""
    if after["requests"] < before["requests"]:  # Triton restarted: its counters began anew
        before = dict.fromkeys(before, 0)
    d = {k: after[k] - before[k] for k in _TRITON_FIELDS}
    requests = max(d["requests"], 1)
    return {"requests": d["requests"], "failed": d["failed"],
            "mean_batch_rows": round(d["rows"] / max(d["executions"], 1), 2),
            "mean_queue_ms": round(d["queue_ns"] / requests / 1e6, 3),
            "mean_compute_ms": round(d["compute_ns"] / requests / 1e6, 3)}


def triton_delta(before: dict[str, dict[str, int]],
                 after: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """``model_delta`` for every model served before or after (a model gone counts nothing)."""
    zero = dict.fromkeys(_TRITON_FIELDS, 0)
    return {name: model_delta(before.get(name, zero), after.get(name, zero))
            for name in sorted(before.keys() | after.keys())}


def encoder_counters(metrics_text: str) -> dict[str, float]:
    """The gateway's query encoder from a /metrics scrape: runs and seconds since start."""
    found = {kind: float(value) for kind, value in _ENCODER.findall(metrics_text)}
    return {"calls": found.get("count", 0.0), "seconds": found.get("sum", 0.0)}


def encoder_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """What the query encoder did during a run: its calls and mean milliseconds per call."""
    if after["calls"] < before["calls"]:  # another gateway process: counters began anew
        before = dict.fromkeys(before, 0.0)
    calls = after["calls"] - before["calls"]
    return {"calls": int(calls),
            "mean_compute_ms": round((after["seconds"] - before["seconds"]) / max(calls, 1)
                                     * 1000, 3)}


def work_table(results: dict[str, dict]) -> list[str]:
    """Markdown rows: every Triton model and the gateway's encoder, per run."""
    lines = ["| run | model | requests | failed | mean batch | queue ms | compute ms |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for label, r in results.items():
        for model, t in r.get("triton", {}).items():
            lines.append(f"| {label} | Triton `{model}` | {t['requests']} | {t['failed']} | "
                         f"{t['mean_batch_rows']} | {t['mean_queue_ms']} | "
                         f"{t['mean_compute_ms']} |")
        if "query_encoder" in r:
            e = r["query_encoder"]
            lines.append(f"| {label} | {ENCODER_ROW} | {e['calls']} | – | – | – | "
                         f"{e['mean_compute_ms']} |")
    return lines
