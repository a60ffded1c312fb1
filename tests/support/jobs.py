"""Helpers for consolidation-job tests: wait for a job to end, list a user's memories."""

from __future__ import annotations

from typing import Any, Protocol

from support.waiting import wait_for


class Http(Protocol):  # a TestClient or an httpx.Client
    def get(self, url: str, **kwargs: Any) -> Any: ...


def wait_done(client: Http, job_id: str, timeout_s: float = 60.0) -> dict:
    """The job once it is done or failed; fails the test after ``timeout_s``."""

    def ended() -> dict | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("done", "failed") else None

    return wait_for(ended, f"job {job_id} to end", timeout_s)


def listed(client: Http, user: str, **params: object) -> dict[str, dict]:
    """The user's memories by id (up to 1,000), with list parameters."""
    page = client.get("/v1/memories", params={"user_id": user, "limit": 1000, **params})
    assert page.status_code == 200, page.text
    return {m["id"]: m for m in page.json()["results"]}
