"""Helpers shared by the Mem0 API tests."""

from __future__ import annotations

from typing import Any

import httpx

from support.waiting import wait_for

EVENT_TIMEOUT_S = 30.0


def settled(http: httpx.Client, event_id: str, **kwargs: Any) -> dict:
    """Poll ``GET /v1/event/{id}/`` until the async add succeeded or failed; fail loudly at
    the deadline."""

    def ended() -> dict | None:
        response = http.get(f"/v1/event/{event_id}/", **kwargs)
        assert response.status_code == 200, response.text
        event = response.json()
        return event if event["status"] in ("SUCCEEDED", "FAILED") else None

    return wait_for(ended, f"event {event_id} to settle", EVENT_TIMEOUT_S)
