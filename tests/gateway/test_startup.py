"""A start-up that fails at any step closes what the steps before it opened.

Each step of ``gateway.startup`` fails in turn: for real where this machine can make it fail (a
damaged key store, a store being restored, a store from a newer gateway), else by replacing the
step with one that raises. Then no file under the data directory is held open (store, WAL,
in-use lock, keys), the gateway's worker threads are gone, the background tasks are done, and
a restore, or a second gateway, can take the store. No Triton is needed: the gateway starts
without one (``/readyz`` says 503) and its background connector is cancelled like the rest.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support.waiting import wait_for

import gateway.app
import gateway.startup
from gateway.app import create_app
from gateway.settings import ROOT, Settings
from gateway.store.in_use import StoreBusy, sole_use

# Thread name prefixes of the gateway's own pools (store, keys, search batcher, query encoder,
# index builds); the jobs' shared CPU threads live for the process and are not counted.
OWN_THREADS = ("sqlite", "keys", "search", "query-encoder", "ann-build")
STEPS = ("open_keys", "hold_store", "open_store", "open_local_encoder", "open_inference",
         "build_service", "track_versions", "mark_feed", "load_index", "connect_embedder",
         "connect_reranker", "build_workers", "start_workers")


class Injected(RuntimeError):
    """The failure put in place of a step."""


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def no_triton_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """A gateway whose Triton is not there (nothing listens on its ports)."""
    port = _unused_port()
    return Settings(data_dir=tmp_path / "data", model_repository=ROOT / "model_repository",
                    triton_managed=False, triton_host="127.0.0.1", triton_grpc_port=port,
                    triton_http_port=port, triton_metrics_port=port, inference_timeout_s=1.0,
                    **overrides)


def open_files_under(root: Path) -> list[str]:
    """Files under ``root`` that this process holds a descriptor on."""
    held = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith(f"{root.resolve()}/"):
            held.append(target)
    return held


def own_threads() -> set[int]:
    return {t.ident for t in threading.enumerate()
            if t.is_alive() and t.name.startswith(OWN_THREADS) and t.ident is not None}


class Probe:
    """Watches a start from inside its event loop: the tasks alive after the steps that start
    some, and, once the start-up stack has closed everything (its first callback runs last),
    whether each of those tasks was done by then (the loop's end would cancel them anyway).
    Before the index loads it runs one search, so the search batcher has a thread to stop."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.undone: list[str] | None = None  # set when the stack has unwound
        for name in ("connect_embedder", "start_workers"):
            monkeypatch.setattr(gateway.startup, name, self._logging(getattr(gateway.startup,
                                                                             name)))
        load_index = gateway.startup.load_index

        async def searched_first(settings: Settings, service: Any, metrics: Any) -> None:
            await service.searcher.search("nobody", np.zeros(4, np.float32), 1)
            await load_index(settings, service, metrics)

        monkeypatch.setattr(gateway.startup, "load_index", searched_first)
        start_gateway = gateway.app.start_gateway

        async def watched(stack: AsyncExitStack, wiring: Any) -> Any:
            stack.push_async_callback(self._unwound)
            return await start_gateway(stack, wiring)

        monkeypatch.setattr(gateway.app, "start_gateway", watched)

    def _logging(self, step: Callable[..., Any]) -> Callable[..., Any]:
        async def run_async(*args: Any) -> Any:
            before = asyncio.all_tasks()
            result = await step(*args)
            self.tasks |= asyncio.all_tasks() - before
            return result

        def run(*args: Any) -> Any:
            before = asyncio.all_tasks()
            result = step(*args)
            self.tasks |= asyncio.all_tasks() - before
            return result

        return run_async if asyncio.iscoroutinefunction(step) else run

    async def _unwound(self) -> None:
        self.undone = [task.get_name() for task in self.tasks if not task.done()]


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> Probe:
    return Probe(monkeypatch)


@pytest.fixture
def threads_before() -> Iterator[set[int]]:
    yield own_threads()


def assert_all_closed(settings: Settings, threads_before: set[int], tasks: Probe) -> None:
    assert open_files_under(settings.data_dir) == []  # store, WAL, in-use lock, keys
    def lingering() -> list[str]:
        return [t.name for t in threading.enumerate() if t.ident in own_threads() - threads_before]

    try:
        wait_for(lambda: not lingering(), "the gateway's threads to stop", timeout_s=10)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: still running {lingering()}") from None
    assert tasks.undone == []  # every background task stopped before the loop ended
    sole_use(settings.db_path).release()  # a restore can take the store now


def fail_to_start(settings: Settings, error: type[BaseException]) -> None:
    with pytest.raises(error), TestClient(create_app(settings)):
        pass


def test_a_failing_key_store_closes_its_thread_and_file(
        tmp_path: Path, threads_before: set[int], tasks: Probe) -> None:
    settings = no_triton_settings(tmp_path, auth="required")
    settings.data_dir.mkdir(parents=True)
    settings.keys_path.write_bytes(b"not a database, but long enough to be read as one" * 40)
    fail_to_start(settings, sqlite3.DatabaseError)
    assert_all_closed(settings, threads_before, tasks)


def test_a_store_being_restored_refuses_the_start_and_closes_the_keys(
        tmp_path: Path, threads_before: set[int], tasks: Probe) -> None:
    settings = no_triton_settings(tmp_path, auth="required")
    restore = sole_use(settings.db_path)
    try:
        fail_to_start(settings, StoreBusy)
        assert [Path(p).name for p in open_files_under(settings.data_dir)] == [
            f"{settings.db_path.name}.in-use"]  # only the restore's own lock
    finally:
        restore.release()
    assert_all_closed(settings, threads_before, tasks)


def test_a_store_from_a_newer_gateway_is_closed_and_its_lock_released(
        tmp_path: Path, threads_before: set[int], tasks: Probe) -> None:
    settings = no_triton_settings(tmp_path, auth="required")
    settings.data_dir.mkdir(parents=True)
    with sqlite3.connect(settings.db_path) as conn:
        conn.execute("PRAGMA user_version = 9999")
    conn.close()
    fail_to_start(settings, RuntimeError)
    assert_all_closed(settings, threads_before, tasks)


@pytest.mark.parametrize("step", STEPS[3:])
def test_a_failing_step_closes_every_step_before_it(
        step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads_before: set[int],
        tasks: Probe) -> None:
    def fail(*args: Any) -> Any:
        raise Injected(step)

    monkeypatch.setattr(gateway.startup, step, fail)
    settings = no_triton_settings(tmp_path, auth="required",
                                  llm_base_url="http://127.0.0.1:9/v1", llm_model="stub")
    fail_to_start(settings, Injected)
    assert_all_closed(settings, threads_before, tasks)


def test_a_failure_after_every_step_closes_all_and_the_store_serves_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads_before: set[int],
        tasks: Probe) -> None:
    clients: list[Any] = []
    build_ingest = gateway.startup.build_ingest

    def recording_build_ingest(*args: Any) -> Any:
        ingest, llm = build_ingest(*args)
        clients.append(llm)
        return ingest, llm

    def fail(*args: Any) -> None:
        raise Injected("after start-up")

    monkeypatch.setattr(gateway.startup, "build_ingest", recording_build_ingest)
    monkeypatch.setattr(gateway.app, "freeze_heap", fail)
    settings = no_triton_settings(tmp_path, auth="required", feed_follow=True,
                                  llm_base_url="http://127.0.0.1:9/v1", llm_model="stub")
    fail_to_start(settings, Injected)
    # the Triton connector, ingest, jobs, schedule, trigger, gauges, the change feed
    assert len(tasks.tasks) >= 7
    assert_all_closed(settings, threads_before, tasks)
    assert [llm._http.is_closed for llm in clients] == [True]
    monkeypatch.undo()
    with TestClient(create_app(settings)) as client:  # a second gateway takes the same store
        assert client.get("/healthz").status_code == 200
        assert client.app.state.gateway.store.is_open  # type: ignore[attr-defined]


def test_a_normal_shutdown_closes_everything(tmp_path: Path, threads_before: set[int],
                                             tasks: Probe) -> None:
    settings = no_triton_settings(tmp_path, auth="required")
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 503  # no Triton: started anyway
        assert open_files_under(settings.data_dir)
        with pytest.raises(StoreBusy):
            sole_use(settings.db_path)
    assert_all_closed(settings, threads_before, tasks)
