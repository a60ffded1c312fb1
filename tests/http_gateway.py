"""A gateway served over real HTTP by uvicorn in a thread, on a free loopback port: for
clients that open their own connections (mem0ai uses httpx and requests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from support import free_ports

from gateway.app import create_app
from gateway.settings import Settings

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
