"""The store gauges on /metrics: memories, users and per-user sizes, recounted in the
background (a scrape only reads them)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from support import settings_for, wait_for

from gateway.app import create_app
from gateway.triton import TritonServer


def scraped(client: TestClient) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in
            re.finditer(r"^(memory_\S+) (\S+)$", client.get("/metrics").text, re.M)}


def test_store_gauges_follow_writes(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", metrics_refresh_s=0.05)
    with TestClient(create_app(settings)) as client:
        sizes = {"ann": 1, "ben": 2, "cat": 3, "dan": 8}
        response = client.post("/v1/memories/batch", json={"dedup": False, "items": [
            {"user_id": user, "text": f"{user} fact {i}"}
            for user, n in sizes.items() for i in range(n)]})
        assert response.status_code == 201, response.text
        want = {"memory_store_memories": 14.0, "memory_store_users": 4.0,
                'memory_user_memories{quantile="1.0"}': 8.0,
                'memory_user_memories{quantile="0.5"}': 2.5}
        wait_for(lambda: {k: scraped(client).get(k) for k in want} == want, f"gauges {want}")
        client.delete("/v1/memories", params={"user_id": "dan"})
        want = {"memory_store_memories": 6.0, "memory_store_users": 3.0,
                'memory_user_memories{quantile="1.0"}': 3.0}
        wait_for(lambda: {k: scraped(client).get(k) for k in want} == want, f"gauges {want}")
        metrics = scraped(client)
        assert metrics["memory_jobs_archived_total"] == 0.0  # compress jobs count here
