"""The gateway freezes its start-up heap out of the garbage collector's view (full collections
then scan only what came since) and unfreezes it at shutdown."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings


def test_start_up_heap_is_frozen_while_serving_and_released_at_shutdown(
        settings: Settings) -> None:
    gc.unfreeze()  # whatever an earlier test left
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
