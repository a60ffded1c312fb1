"""Shared fixtures: a real Triton server for the session, gateways on temporary SQLite files,
and a tiny cross-encoder and a tiny CLIP exported into repositories (built once, used by export
and gateway tests)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from support import make_triton, postgres, settings_for
from support.postgres import PostgresServer

from export.cli import main as export_main
from gateway.app import create_app
from gateway.settings import Settings
from gateway.store.base import Store
from gateway.store.postgres.store import PostgresStore
from gateway.store.sqlite.store import SQLiteStore
from gateway.triton import TritonServer


@pytest.fixture(scope="session")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """The real tritonserver serving the exported model_repository/ (run `make export` first)."""
    server = make_triton(tmp_path_factory.mktemp("triton-logs"))
    with server:
        yield server


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module listing ``STORE_BACKENDS`` runs each of its gateway tests on each store."""
    backends = getattr(metafunc.module, "STORE_BACKENDS", None)
    if backends and "store_backend" in metafunc.fixturenames:
        metafunc.parametrize("store_backend", backends, indirect=True)


@pytest.fixture
def store_backend(request: pytest.FixtureRequest) -> str:
    """The store under the gateway fixtures: "sqlite" (the default; ``MEMORY_TEST_STORE``
    changes it for the whole run) or "postgres" (a fresh database on the session's server)."""
    return str(getattr(request, "param", os.environ.get("MEMORY_TEST_STORE", "sqlite")))


@pytest.fixture
def settings(triton: TritonServer, tmp_path: Path, store_backend: str,
             request: pytest.FixtureRequest) -> Settings:
    if store_backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        return settings_for(triton, tmp_path / "data", store_url=SecretStr(url))
    return settings_for(triton, tmp_path / "data")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A gateway on a fresh SQLite file, talking to the session's Triton server."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session (skips, saying why, where there is none)."""
    reason = postgres.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = postgres.started()
    yield server
    server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty database on the session's server."""
    return postgres_server.database()


# Each store backend, from a temporary directory (and the request, for the server-backed one)
# to an unopened store; two calls in one test give two stores on the same data (two gateways).
STORES: dict[str, Callable[[Path, pytest.FixtureRequest], Store]] = {
    "sqlite": lambda tmp, _: SQLiteStore(tmp / "memories.sqlite3", feed_poll_s=0.01),
    "postgres": lambda _, request: PostgresStore(request.getfixturevalue("postgres_url")),
}


@pytest.fixture(params=sorted(STORES))
def make_store(request: pytest.FixtureRequest, tmp_path: Path
               ) -> Iterator[Callable[[], Store]]:
    """Opened stores of one backend (each backend in turn) on the same data; closed after."""
    opened: list[Store] = []

    def factory() -> Store:
        store = STORES[request.param](tmp_path, request)
        asyncio.run(store.open())
        opened.append(store)
        return store

    yield factory
    for store in opened:
        asyncio.run(store.close())


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained 2-layer cross-encoder, laid out like a hub model (see tiny_cross_encoder)."""
    from support.tiny_cross_encoder import build

    return build(tmp_path_factory.mktemp("tiny-cross-encoder"))


@pytest.fixture(scope="session")
def reranker_repo(cross_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding ``reranker/1``, exported and validated by the real CLI."""
    repo = tmp_path_factory.mktemp("reranker-export") / "model_repository"
    argv = ["reranker", "--model", str(cross_encoder_dir), "--repository", str(repo)]
    assert export_main(argv) == 0
    return repo


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLIP trained on colours, laid out like a hub model (see tiny_clip)."""
    from support.tiny_clip import build

    return build(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture(scope="session")
def clip_repo(clip_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding ``clip_image/1`` and ``clip_text/1``, exported by the real CLI."""
    repo = tmp_path_factory.mktemp("clip-export") / "model_repository"
    assert export_main(["clip", "--model", str(clip_dir), "--repository", str(repo)]) == 0
    return repo


@pytest.fixture(scope="module")
def clip_triton(clip_repo: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[TritonServer]:
    """A Triton serving the exported embedder and the tiny CLIP's two towers."""
    from loadtest.repository import copy_latest_as_v1

    root = tmp_path_factory.mktemp("clip-serving")
    repo = copy_latest_as_v1(root, "embedder")
    copy_latest_as_v1(root, "clip_image", source=clip_repo)
    copy_latest_as_v1(root, "clip_text", source=clip_repo)
    server = make_triton(root, repository=repo, models=("embedder", "clip_image", "clip_text"))
    with server:
        yield server
