"""Shared fixtures: a real Triton server for the session, gateways on temporary SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import make_triton, settings_for

from gateway.app import create_app
from gateway.settings import Settings
from gateway.triton import TritonServer


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """The real tritonserver serving the exported model_repository/ (run `make export` first)."""
    server = make_triton(tmp_path_factory.mktemp("triton-logs"))
    with server:
        yield server


@pytest.fixture
def settings(triton: TritonServer, tmp_path: Path) -> Settings:
    return settings_for(triton, tmp_path / "data")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A gateway on a fresh SQLite file, talking to the session's Triton server."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client
