"""Helpers for consolidation-job tests: wait for a job to end, list a user's memories."""

from __future__ import annotations

import time
from typing import Any, Protocol


class Http(Protocol):  # a TestClient or an httpx.Client
    def get(self, url: str, **kwargs: Any) -> Any: ...


POLL_S = 0.02


def wait_done(client: Http, job_id: str, deadline_s: float = 60.0) -> dict:
    """The job once it is done or failed; fails the test after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job still {job} after {deadline_s} s"
        time.sleep(POLL_S)


def listed(client: Http, user: str, **params: object) -> dict[str, dict]:
    """The user's memories by id (up to 1,000), with list parameters."""
    page = client.get("/v1/memories", params={"user_id": user, "limit": 1000, **params})
    assert page.status_code == 200, page.text
    return {m["id"]: m for m in page.json()["results"]}
