"""A local stack for benchmarks: the bundled Triton plus a real gateway process (uvicorn)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from gateway.settings import ROOT
from gateway.triton import TritonServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def triton_server(log_dir: Path) -> TritonServer:
    return TritonServer(
        model_repository=ROOT / "model_repository",
        http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
        log_file=log_dir / "triton.log",
    )


@contextlib.contextmanager
def gateway_process(triton: TritonServer, data_dir: Path, log_dir: Path,
                    env: dict[str, str] | None = None, *, cwd: Path = ROOT,
                    ready_s: float = 120, cpus: str | None = None,
                    log_name: str = "gateway.log") -> Iterator[str]:
    """Run ``python -m gateway`` against ``triton``; yields its base URL once /readyz is 200.

    ``env`` adds settings for this process (e.g. ``MEMORY_ADMISSION_ENABLED``; authentication is
    off unless it says ``MEMORY_AUTH``); ``cwd`` (with
    ``PYTHONPATH`` in ``env``) runs the gateway of another checkout, for before/after runs.
    ``cpus`` (``taskset`` syntax, e.g. ``"0"``) pins the process to those cores.
    """
    port = free_port()
    # Auth off (it listens on loopback only): the reports scrape /metrics, which answers
    # operator keys only when keys are required. ``env`` may still turn it on.
    environment = dict(os.environ) | {"MEMORY_AUTH": "off"} | (env or {}) | {
        "GATEWAY_PORT": str(port),
        "MEMORY_DATA_DIR": str(data_dir),
        "MEMORY_TRITON_MANAGED": "false",
        "MEMORY_TRITON_GRPC_PORT": str(triton.grpc_port),
        "MEMORY_TRITON_HTTP_PORT": str(triton.http_port),
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "gateway"]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    with (log_dir / log_name).open("ab") as log:
        process = subprocess.Popen(command, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gateway exited early; see {log_dir / log_name}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway not ready after {ready_s:g} s")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


BUILDS_PENDING = "memory_index_builds_pending"


def wait_for_index(http: httpx.Client, timeout_s: float = 1800) -> float | None:
    """Wait until the gateway has no ANN graph build queued or running; the seconds waited.

    Seeding a big user starts graph builds (minutes of a core each at 100k vectors) that
    would otherwise run through the measurement; a user of the service meets the settled
    index. None when the gateway exposes no such gauge (an older checkout): nothing waited.
    """
    started = time.monotonic()
    while True:
        pending = _gauge(http.get("/metrics").text, BUILDS_PENDING)
        if pending is None:
            return None
        if pending == 0:
            return round(time.monotonic() - started, 1)
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"index builds still pending after {timeout_s:g} s")
        time.sleep(1)


def _gauge(metrics_text: str, name: str) -> float | None:
    for line in metrics_text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None
