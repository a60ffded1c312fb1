"""The one launcher of the servers tests talk to: Triton on free loopback ports, and a gateway
in three forms (in-process ``TestClient`` needs only ``settings_for``; uvicorn in a thread for
clients that open their own connections; a real ``python -m gateway`` process for tests that
kill it)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.settings import ROOT, Settings
from gateway.triton import TritonServer
from support.waiting import wait_for

MODEL_REPOSITORY = ROOT / "model_repository"
START_TIMEOUT_S = 120.0  # a gateway start on a busy 2-core machine (models load, index builds)


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def make_triton(
    log_dir: Path, repository: Path = MODEL_REPOSITORY, models: tuple[str, ...] = ("embedder",)
) -> TritonServer:
    """A (not yet started) server on free loopback ports."""
    http, grpc, metrics = free_ports(3)
    return TritonServer(
        model_repository=repository,
        models=models,
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        log_file=log_dir / f"triton-{grpc}.log",
    )


def settings_for(triton: TritonServer, data_dir: Path, **overrides: object) -> Settings:
    """Gateway settings on ``data_dir`` using the already running ``triton``."""
    return Settings(
        data_dir=data_dir,
        model_repository=triton.model_repository,
        triton_managed=False,
        triton_host=triton.host,
        triton_grpc_port=triton.grpc_port,
        triton_http_port=triton.http_port,
        triton_metrics_port=triton.metrics_port,
        inference_timeout_s=5.0,
        **overrides,  # type: ignore[arg-type]
    )


@contextlib.contextmanager
def serving(settings: Settings, **uvicorn_options: Any) -> Iterator[str]:
    """A gateway served by uvicorn in a thread on ``settings.port`` (a free port when 0 or the
    default); yields its base URL once it accepts, and fails if it does not shut down."""
    port = settings.port if "port" in settings.model_fields_set else free_ports(1)[0]
    options: dict[str, Any] = {"log_level": "warning"} | uvicorn_options
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, lifespan="on",
                            **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"gateway-{port}", daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "the gateway thread exited during start-up"
        return server.started

    wait_for(started, "the gateway to start", START_TIMEOUT_S)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the gateway did not shut down"


@dataclass
class LiveGateway:
    """A gateway reached over real HTTP, and keys for it."""

    url: str
    settings: Settings

    def key(self, tenant: str = "acme", scope: KeyScope = KeyScope.WRITE,
            rate_per_s: float | None = None) -> str:
        with KeyStore(self.settings.keys_path) as store:
            return store.create(tenant, scope, rate_per_s=rate_per_s)[0].secret_key


@dataclass
class GatewayProcess:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def gateway_process(triton: TritonServer, data_dir: Path, log_dir: Path | None = None,
                    env: dict[str, str] | None = None) -> Iterator[GatewayProcess]:
    """``python -m gateway`` on a free port against ``triton`` (``env`` adds settings); yields
    once /readyz answers 200, and stops the process (if still running) on exit."""
    port = free_ports(1)[0]
    environment = dict(os.environ) | (env or {}) | {
        "GATEWAY_PORT": str(port), "MEMORY_DATA_DIR": str(data_dir),
        "MEMORY_TRITON_MANAGED": "false", "MEMORY_TRITON_HOST": triton.host,
        "MEMORY_TRITON_GRPC_PORT": str(triton.grpc_port),
        "MEMORY_TRITON_HTTP_PORT": str(triton.http_port),
        "MEMORY_TRITON_METRICS_PORT": str(triton.metrics_port)}
    log_path = (log_dir or data_dir.parent) / f"gateway-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway"], env=environment, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, f"the gateway exited; see {log_path}"
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        return False

    try:
        wait_for(ready, f"the gateway to be ready (log: {log_path})", START_TIMEOUT_S,
                 poll_s=0.05)
        yield GatewayProcess(url, process, log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(30)
