"""Start, watch and stop the Triton server bundled in the ``nvidia-pytriton`` wheel.

The wheel ships ``tritonserver`` with the python backend only. The python-backend stub must be
copied next to the backend, and the server must find the venv's python (for numpy, onnxruntime
and tokenizers inside ``model.py``) and the wheel's shared libraries. ``make run`` and the test
suite both use this launcher, so what the tests exercise is what users run.

    python -m gateway.triton            # serve model_repository/ until Ctrl-C
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.versions.query_model import sync_query_model

log = logging.getLogger("gateway.triton")


class TritonLaunchError(RuntimeError):
    """The server could not be started or did not become ready."""


def _package_dir() -> Path:
    import pytriton  # the wheel that carries the server binary

    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def _prepare_python_backend(server_dir: Path) -> None:
    """Put the stub for this interpreter's version where the backend looks for it."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    target = server_dir / "backends" / "python" / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonLaunchError(f"no python-backend stub for Python {version} in {stub.parent}")
    if not target.exists() or target.stat().st_size != stub.stat().st_size:
        shutil.copy2(stub, target)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the server when the process that started it dies (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class TritonServer:
    """One ``tritonserver`` process on loopback with explicit model control."""

    model_repository: Path
    models: Sequence[str] = ("embedder",)
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    log_file: Path = Path("logs/triton.log")
    extra_args: Sequence[str] = ()
    # The model whose batcher-free twin serves search queries (gateway.versions.query_model);
    # the twin is made in the repository and loaded when this model is among ``models``.
    query_twin_of: str | None = "embedder"
    _twin: str | None = field(default=None, init=False, repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def loaded_models(self) -> list[str]:
        """The models loaded at start: ``models`` and the query twin, when there is one."""
        return list(self.models) + ([self._twin] if self._twin else [])

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        server_dir = _package_dir()
        args = [
            str(server_dir / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository.resolve()}",
            f"--backend-directory={server_dir / 'backends'}",
            f"--cache-directory={server_dir / 'caches'}",
            f"--http-address={self.host}",
            f"--grpc-address={self.host}",
            f"--metrics-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--model-control-mode=explicit",
            "--exit-timeout-secs=10",
        ]
        args += [f"--load-model={name}" for name in self.loaded_models]
        return args + list(self.extra_args)

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        venv_bin = str(Path(sys.executable).parent)
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        libs = [
            str(_package_dir().parent.parent / "nvidia_pytriton.libs"),
            str(sysconfig.get_config_var("LIBDIR")),
        ]
        if env.get("LD_LIBRARY_PATH"):
            libs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
        return env

    def start(self, timeout_s: float = 120.0) -> TritonServer:
        """Start the server and block until it and every requested model are ready."""
        if self.running:
            return self
        if not self.model_repository.is_dir():
            raise TritonLaunchError(
                f"model repository {self.model_repository} does not exist: run `make export`"
            )
        for name in self.models:
            if not has_version(self.model_repository, name):
                raise TritonLaunchError(
                    f"model {name!r} has no version in {self.model_repository}: run `make export`"
                )
        _prepare_python_backend(_package_dir())
        if self.query_twin_of is not None and self.query_twin_of in self.models:
            try:
                self._twin = sync_query_model(self.model_repository, self.query_twin_of)
            except (OSError, RuntimeError, ValueError) as exc:  # e.g. a read-only repository
                logging.getLogger("gateway.triton").warning(
                    "no query twin for %s (%s); searches use the batching model",
                    self.query_twin_of, exc)
                self._twin = None
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        # Handed to the child process, which writes it for as long as it runs: no with block.
        log = self.log_file.open("ab")  # noqa: SIM115
        try:
            self._process = subprocess.Popen(  # noqa: S603 (our own tritonserver command line)
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._environment(),
                preexec_fn=_die_with_parent,
                start_new_session=True,  # Ctrl-C reaches us; we stop the server in order
            )
        finally:
            log.close()
        self.wait_ready(timeout_s)
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        urls = [f"{self.http_url}/v2/health/ready"]
        urls += [f"{self.http_url}/v2/models/{name}/ready" for name in self.loaded_models]
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise TritonLaunchError(
                    f"tritonserver exited with code {self._process.returncode}:\n{self.log_tail()}"
                )
            if all(_http_ok(url) for url in urls):
                return
            time.sleep(0.25)
        self.stop()
        raise TritonLaunchError(
            f"tritonserver not ready after {timeout_s:.0f}s:\n{self.log_tail()}"
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, wait for a clean shutdown, then SIGKILL the whole process group."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is not None:  # died on its own: its model stubs may live on
            reap_process_group(process.pid)
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            reap_process_group(process.pid)
            process.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reap_process_group(pgid: int) -> None:
    """SIGKILL what is left of a dead server's process group.

    A ``tritonserver`` killed with SIGKILL leaves its python-backend stubs (one per model
    instance, ~220 MB each) running until they notice; while the dead server is an unreaped
    zombie they never do (seen: orphans alive 30 min after chaos runs). They share its group
    (the server starts a session of its own), so this ends them at once.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class TritonSupervisor:
    """Restarts a managed ``TritonServer`` that dies, with exponential backoff.

    A server that exits while supervised (crash, OOM kill, ``kill -9``) is started again after
    ``backoff_s``, doubling up to ``max_backoff_s`` while restarts keep failing or the server
    keeps dying within ``stable_after_s`` of its start (a crash loop); a server that stayed up
    that long earns the short delay again. The gateway's readiness follows on its own:
    ``/readyz`` asks Triton, and the gRPC channel reconnects. Call ``stop()`` before
    ``server.stop()``, so a deliberate stop is not mistaken for a crash.

    The watcher thread starts the new server, and Linux ties the child's parent-death signal
    to that thread: the restarted server is stopped when supervision ends, as it should be.
    """

    def __init__(self, server: TritonServer, *, backoff_s: float = 1.0,
                 max_backoff_s: float = 30.0, stable_after_s: float = 10.0,
                 start_timeout_s: float = 120.0, poll_s: float = 0.2) -> None:
        self.server = server
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.stable_after_s, self.start_timeout_s, self.poll_s = (
            stable_after_s, start_timeout_s, poll_s)
        self.restarts = 0  # successful restarts
        self.failures = 0  # restart attempts that did not come up
        self.last_exit: int | None = None  # the dead server's exit code
        self.delays: list[float] = []  # each wait before a restart attempt, in order
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TritonSupervisor:
        self._thread = threading.Thread(target=self._watch, name="triton-supervisor",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _watch(self) -> None:
        delay = self.backoff_s
        started = time.monotonic()
        while not self._stopping.wait(self.poll_s):
            process = self.server._process
            if process is None or process.poll() is None:
                continue  # running, or deliberately stopped
            self.last_exit = process.returncode
            reap_process_group(process.pid)  # the dead server's orphaned model stubs
            if time.monotonic() - started >= self.stable_after_s:
                delay = self.backoff_s
            log.warning("tritonserver exited with code %s; restarting in %.1f s",
                        process.returncode, delay)
            while True:
                self.delays.append(delay)
                if self._stopping.wait(delay):
                    return
                delay = min(delay * 2, self.max_backoff_s)
                try:
                    self.server._process = None
                    self.server.start(self.start_timeout_s)
                except (TritonLaunchError, OSError) as exc:
                    self.failures += 1
                    log.error("tritonserver restart failed (%s); next try in %.1f s",
                              str(exc).splitlines()[0], delay)
                    continue
                self.restarts += 1
                started = time.monotonic()
                log.info("tritonserver restarted (restart %d)", self.restarts)
                break


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http on loopback)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def has_version(repository: Path, model: str) -> bool:
    """Whether ``repository/model`` holds at least one numbered version folder."""
    return any(p.name.isdigit() for p in (repository / model).glob("*"))


def server_from_settings(settings: object) -> TritonServer:
    """The embedder always; the reranker and the CLIP towers too when exported (optional)."""
    from gateway.settings import Settings

    assert isinstance(settings, Settings)
    models = [settings.embedder_model]
    if has_version(settings.model_repository, settings.reranker_model):
        models.append(settings.reranker_model)
    clip = [settings.clip_image_model, settings.clip_text_model]
    if all(has_version(settings.model_repository, name) for name in clip):
        models.extend(clip)
    return TritonServer(
        model_repository=settings.model_repository,
        models=tuple(models),
        host=settings.triton_host,
        http_port=settings.triton_http_port,
        grpc_port=settings.triton_grpc_port,
        metrics_port=settings.triton_metrics_port,
        log_file=settings.triton_log_dir / "triton.log",
        query_twin_of=settings.embedder_model if settings.query_twin else None,
    )


def main(argv: list[str] | None = None) -> int:
    """Serve the model repository until interrupted."""
    import argparse

    from gateway.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m gateway.triton", description=main.__doc__)
    parser.parse_args(argv)
    settings = Settings()
    server = server_from_settings(settings)
    print(f"starting tritonserver (log: {server.log_file}) ...", file=sys.stderr)
    try:
        server.start(settings.triton_start_timeout_s)
    except TritonLaunchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"triton ready: grpc {server.grpc_url}, http {server.http_url}", file=sys.stderr)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    supervisor = TritonSupervisor(server, start_timeout_s=settings.triton_start_timeout_s)
    supervisor.start()
    try:
        signal.sigwait(stop_signals)
    finally:
        print("stopping tritonserver ...", file=sys.stderr)
        supervisor.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
