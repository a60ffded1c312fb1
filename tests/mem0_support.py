"""Helpers shared by the Mem0 API tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

EVENT_DEADLINE_S = 30.0


def settled(http: httpx.Client, event_id: str, **kwargs: Any) -> dict:
    """Poll ``GET /v1/event/{id}/`` until the async add succeeded or failed; fail loudly at
    the deadline."""
    deadline = time.monotonic() + EVENT_DEADLINE_S
    while True:
        response = http.get(f"/v1/event/{event_id}/", **kwargs)
        assert response.status_code == 200, response.text
        event = response.json()
        if event["status"] in ("SUCCEEDED", "FAILED"):
            return event
        assert time.monotonic() < deadline, f"event still {event} after {EVENT_DEADLINE_S} s"
        time.sleep(0.02)
