"""A real gateway on a free loopback port (uvicorn in a thread, auth required) for the HTTP
client, keys for it, and a client-side embedder that is the served model itself."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from support.servers import LiveGateway, free_ports, serving, settings_for

from gateway.triton import TritonServer


@pytest.fixture(scope="module")
def live_gateway(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[LiveGateway]:
    [port] = free_ports(1)
    settings = settings_for(triton, tmp_path_factory.mktemp("client-data"), auth="required",
                            port=port)
    with serving(settings, log_config=None, log_level=None, access_log=True) as url:
        yield LiveGateway(url, settings)


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
