"""docker/grafana/: the dashboard only plots metrics that really exist, and the overlay's files
are where it mounts them from (Docker cannot run here, so check by construction)."""

from __future__ import annotations

import json
import re
import urllib.request

import yaml

from gateway.metrics import Metrics
from gateway.settings import ROOT
from gateway.triton import TritonServer

GRAFANA = ROOT / "docker" / "grafana"
_METRIC = re.compile(r"\b((?:memory|nv)_[a-z_]+)\b")


def referenced_metrics() -> set[str]:
    dashboard = json.loads((GRAFANA / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    return set(_METRIC.findall(" ".join(exprs)))


def exposed(text: str) -> set[str]:
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    # Histograms are queried by series name (_bucket, _sum, _count), counters may be too.
    return names | {re.sub(r"_(bucket|sum|count|created)$", "", n) for n in names}


def test_dashboard_gateway_metrics_exist() -> None:
    """Against the gateway's own registry: every series the dashboard queries is declared."""
    series = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count", ""],
                    "gauge": [""]}[family.type]
        series |= {family.name + suffix for suffix in suffixes}
    wanted = {m for m in referenced_metrics() if m.startswith("memory_")}
    assert wanted and wanted <= series, wanted - series


def test_dashboard_triton_metrics_exist(triton: TritonServer) -> None:
    url = f"http://{triton.host}:{triton.metrics_port}/metrics"
    with urllib.request.urlopen(url) as response:
        names = exposed(response.read().decode())
    wanted = {m for m in referenced_metrics() if m.startswith("nv_")}
    assert wanted and wanted <= names, wanted - names


def test_overlay_mounts_files_that_exist_and_binds_loopback() -> None:
    compose = yaml.safe_load((GRAFANA / "compose.yaml").read_text())
    overlay = compose["services"]
    # metrics-key: the operator key Prometheus scrapes /metrics with (issue 19)
    assert set(overlay) == {"prometheus", "grafana", "metrics-key"}
    named = set(compose["volumes"]) | {"memory-data"}  # memory-data: docker/compose.yaml's
    for service in overlay.values():
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            assert source in named or (ROOT / "docker" / source).exists(), source
        assert all(p.startswith("127.0.0.1:") for p in service.get("ports", []))
    assert "metrics-key:/etc/prometheus/key:ro" in overlay["prometheus"]["volumes"]
    scrape = yaml.safe_load((GRAFANA / "prometheus.yml").read_text())["scrape_configs"]
    targets = {t for job in scrape for c in job["static_configs"] for t in c["targets"]}
    assert targets == {"gateway:8080", "triton:8002"}
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    uids = {d["uid"] for d in datasource["datasources"]}
    dashboard = json.loads((GRAFANA / "dashboard.json").read_text())
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} <= uids
