"""The affinity proxy of docker/haproxy/haproxy.cfg, run for real in front of test gateways."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.settings import ROOT
from support.servers import free_ports
from support.waiting import wait_for

HAPROXY_CONFIG = ROOT / "docker" / "haproxy" / "haproxy.cfg"


def haproxy_binary() -> str:
    """The Debian ``haproxy`` (``make test`` installs it); a visible skip where it is missing."""
    found = shutil.which("haproxy")
    if found is None:
        pytest.skip("haproxy is not installed (`make test` installs Debian's haproxy package)")
    return found


def proxy_environment(bind: str, gateway_a: str, gateway_b: str) -> dict[str, str]:
    return dict(os.environ) | {"PROXY_BIND": bind, "GATEWAY_A": gateway_a,
                               "GATEWAY_B": gateway_b}


def check_config(gateway_a: str = "127.0.0.1:1", gateway_b: str = "127.0.0.1:2") -> str:
    """``haproxy -c`` on the shipped file; its output (raises when the file is invalid)."""
    result = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(HAPROXY_CONFIG)], capture_output=True, text=True,
        env=proxy_environment("127.0.0.1:8080", gateway_a, gateway_b), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@contextlib.contextmanager
def affinity_proxy(gateway_a: str, gateway_b: str, log_dir: Path) -> Iterator[str]:
    """haproxy with the shipped config on a free port, in front of two gateway URLs; yields
    its URL once both replicas pass its health check."""
    port = free_ports(1)[0]
    environment = proxy_environment(f"127.0.0.1:{port}", gateway_a.removeprefix("http://"),
                                    gateway_b.removeprefix("http://"))
    log_path = log_dir / f"haproxy-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([haproxy_binary(), "-db", "-f", str(HAPROXY_CONFIG)],
                                   env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _accepting(url, process, log_path), "haproxy to accept")
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _accepting(url: str, process: subprocess.Popen[bytes], log_path: Path) -> bool:
    assert process.poll() is None, f"haproxy exited; see {log_path}"
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    return False
