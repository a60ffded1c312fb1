"""Fixtures for the Mem0-compatible API: a real gateway over HTTP (the mem0ai client speaks
httpx and requests, so an in-process TestClient will not do).

The mem0ai package sends telemetry and writes ~/.mem0 when it is imported; both are turned
off or redirected here, before any test module imports it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest
from support import settings_for
from support.servers import serving

from gateway.triton import TritonServer

os.environ["MEM0_TELEMETRY"] = "false"
os.environ.setdefault("MEM0_DIR", tempfile.mkdtemp(prefix="mem0-home-"))

@pytest.fixture(scope="module")
def gateway_url(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One gateway (auth off, loopback) per test module; tests use their own user ids."""
    settings = settings_for(triton, tmp_path_factory.mktemp("mem0-data"))
    with serving(settings) as url:
        yield url
