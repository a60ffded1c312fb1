"""A real gateway on a free loopback port (uvicorn in a thread, auth required) for the HTTP
client, keys for it, and a client-side embedder that is the served model itself."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import uvicorn
from live_gateway import LiveGateway
from support import free_ports, settings_for

from gateway.app import create_app
from gateway.triton import TritonServer

START_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def live_gateway(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[LiveGateway]:
    [port] = free_ports(1)
    settings = settings_for(triton, tmp_path_factory.mktemp("client-data"), auth="required",
                            port=port)
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_config=None, access_log=True, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.05)
    try:
        yield LiveGateway(f"http://127.0.0.1:{port}", settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def my_embed() -> Callable[[Sequence[str]], list[list[float]]]:
    """Embeddings made in the caller's process with the served model's own runtime (the
    "embeddings on your own GPU" pattern, here on CPU): same space as the server's."""
    root = Path(__file__).resolve().parents[2] / "model_repository" / "embedder"
    version = max((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    spec = importlib.util.spec_from_file_location("client_side_runtime",
                                                  version / "embedding_runtime.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runtime = module.EmbeddingRuntime(version, intra_op_threads=1)

    def embed(texts: Sequence[str]) -> list[list[float]]:
        return runtime.embed(list(texts)).tolist()

    return embed
