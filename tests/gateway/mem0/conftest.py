"""Fixtures for the Mem0-compatible API: a real gateway over HTTP (the mem0ai client speaks
httpx and requests, so an in-process TestClient will not do), on a free loopback port.

The mem0ai package sends telemetry and writes ~/.mem0 when it is imported; both are turned
off or redirected here, before any test module imports it.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from support import free_ports, settings_for

from gateway.app import create_app
from gateway.settings import Settings
from gateway.triton import TritonServer

os.environ["MEM0_TELEMETRY"] = "false"
os.environ.setdefault("MEM0_DIR", tempfile.mkdtemp(prefix="mem0-home-"))

START_TIMEOUT_S = 60.0


@contextmanager
def serving(settings: Settings) -> Iterator[str]:
    """A gateway served by uvicorn in a thread; yields its base URL once it accepts."""
    port = free_ports(1)[0]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"gateway-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the gateway thread exited during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError(f"gateway did not start within {START_TIMEOUT_S} s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the gateway did not shut down"


@pytest.fixture(scope="module")
def gateway_url(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One gateway (auth off, loopback) per test module; tests use their own user ids."""
    settings = settings_for(triton, tmp_path_factory.mktemp("mem0-data"))
    with serving(settings) as url:
        yield url
