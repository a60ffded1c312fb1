"""The affinity proxy (docker/haproxy/haproxy.cfg) run for real in front of local gateways,
for the benchmarks and the tests (``tests/support/proxy.py``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from gateway.settings import ROOT
from loadtest.stack import free_port

HAPROXY_CONFIG = ROOT / "docker" / "haproxy" / "haproxy.cfg"
START_TIMEOUT_S = 60.0


class HaproxyMissing(RuntimeError):
    """No ``haproxy`` on the PATH (``make test`` installs Debian's package)."""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                        if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        raise HaproxyMissing("haproxy is not installed "
                             "(`make test` installs Debian's haproxy package)")
    return found


def proxy_environment(bind: str, gateway_a: str, gateway_b: str) -> dict[str, str]:
    """The addresses the shipped config reads from its environment."""
    return dict(os.environ) | {"PROXY_BIND": bind, "GATEWAY_A": gateway_a,
                               "GATEWAY_B": gateway_b}


def check_config(gateway_a: str = "127.0.0.1:1", gateway_b: str = "127.0.0.1:2") -> str:
    """``haproxy -c`` on the shipped file; its output (raises when the file is invalid)."""
    result = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(HAPROXY_CONFIG)], capture_output=True, text=True,
        env=proxy_environment("127.0.0.1:8080", gateway_a, gateway_b), check=False)
    if result.returncode != 0:
        raise RuntimeError(f"haproxy -c failed: {result.stdout}{result.stderr}")
    return result.stdout


@contextlib.contextmanager
def affinity_proxy(gateway_a: str, gateway_b: str, log_dir: Path) -> Iterator[str]:
    """haproxy with the shipped config on a free port in front of two gateway URLs; yields
    its URL once it answers."""
    port = free_port()
    environment = proxy_environment(f"127.0.0.1:{port}", gateway_a.removeprefix("http://"),
                                    gateway_b.removeprefix("http://"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"haproxy-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([haproxy_binary(), "-db", "-f", str(HAPROXY_CONFIG)],
                                   env=environment, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _accepting(url, process, log_path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not answer in {START_TIMEOUT_S:g} s; "
                                   f"see {log_path}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(30)


def _accepting(url: str, process: subprocess.Popen[bytes], log_path: Path) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"haproxy exited; see {log_path}")
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    return False
