"""Console sessions and the service glance, without a server: tokens, expiry, the bound, and
quantiles read from histogram buckets."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram
from support import browser

from gateway.console.glance import bucket_quantile, read
from gateway.console.sessions import Sessions, same_token


def test_sessions_are_random_bounded_and_expire() -> None:
    sessions = Sessions(ttl_s=3600, max_sessions=2)
    first, one = sessions.create("amk_a")
    second, two = sessions.create("amk_b")
    assert first != second and one.csrf != two.csrf and len(first) >= 40
    assert sessions.get(first) == one
    sessions.create("amk_c")  # past the bound: the oldest goes
    assert sessions.get(first) is None and sessions.get(second) == two
    sessions.drop(second)
    assert sessions.get(second) is None
    assert sessions.get(None) is None and sessions.get("x" * 500) is None
    expired = Sessions(ttl_s=0)
    session_id, _ = expired.create("amk_d")
    assert expired.get(session_id) is None and len(expired) == 0


def test_tokens_compare_exactly() -> None:
    assert same_token("abc", "abc")
    assert not same_token("abd", "abc") and not same_token("", "") and not same_token(None, "a")
    assert not same_token("a", None) and not same_token("é", "e")


def test_bucket_quantiles() -> None:
    buckets = [(0.01, 50.0), (0.1, 99.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert bucket_quantile(buckets, 0.5) == 0.01
    assert bucket_quantile(buckets, 0.99) == 0.1
    assert bucket_quantile([(0.1, 0.0), (float("inf"), 0.0)], 0.5) is None
    assert bucket_quantile([(0.1, 1.0), (float("inf"), 10.0)], 0.99) is None  # past the last


def test_glance_reads_the_request_histogram() -> None:
    registry = CollectorRegistry()
    latency = Histogram("memory_http_request_seconds", "", ["method", "route"],
                        buckets=(0.005, 0.05, 0.5), registry=registry)
    for _ in range(9):
        latency.labels("GET", "/v1/memories").observe(0.004)
    latency.labels("GET", "/v1/memories").observe(0.3)
    latency.labels("POST", "/v1/memories/search").observe(0.04)
    glance = read(registry)
    assert [r["route"] for r in glance.routes] == ["/v1/memories", "/v1/memories/search"]
    assert glance.routes[0] | {} == {"method": "GET", "route": "/v1/memories", "count": 10,
                                     "p50": 0.005, "p99": 0.5}


def test_a_missing_browser_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """Where Chromium is not installed the browser tests skip, saying what is missing."""
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="chromium-driver"):
        browser.chromium_or_skip()
