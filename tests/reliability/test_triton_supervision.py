"""A managed Triton that dies is restarted with backoff; meanwhile requests get 503 with
Retry-After, readiness follows, and no acknowledged write is lost."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient
from support import make_triton, settings_for, wait_for

from gateway.app import create_app
from gateway.triton import TritonServer, TritonSupervisor

RESTORE_DEADLINE_S = 90.0  # Triton start-up on a loaded 2-core machine, plus backoff


def _kill(server: TritonServer) -> None:
    process = server._process
    assert process is not None and process.poll() is None
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _wait_ready(client: TestClient) -> float:
    """Seconds until the gateway is ready again (reported, not asserted)."""
    started = time.monotonic()
    wait_for(lambda: client.get("/readyz").status_code == 200, "the gateway to be ready again",
             RESTORE_DEADLINE_S, poll_s=0.2)
    return time.monotonic() - started


def _wait_writes(acked: dict[str, str], count: int, writer: threading.Thread) -> None:
    def written() -> bool:
        assert writer.is_alive(), "the writer died"
        return len(acked) >= count

    wait_for(written, f"{count} acknowledged writes", RESTORE_DEADLINE_S)


def _wait_restarts(supervisor: TritonSupervisor, count: int) -> None:
    """Triton answers ready a moment before ``start()`` returns and the count moves."""
    wait_for(lambda: supervisor.restarts >= count, f"{count} restart(s)")
    assert supervisor.restarts == count, "restarted more often than it was killed"


def test_killed_triton_is_restarted_and_no_acknowledged_write_is_lost(tmp_path: Path) -> None:
    server = make_triton(tmp_path)
    server.start()
    supervisor = TritonSupervisor(server, backoff_s=0.5, max_backoff_s=4.0, stable_after_s=5.0)
    supervisor.start()
    acked: dict[str, str] = {}
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()
    try:
        with TestClient(create_app(settings_for(server, tmp_path / "data"))) as client:
            def writer() -> None:
                n = 0
                while not stop.is_set():
                    text = f"write {n} during an outage drill"
                    response = client.post("/v1/memories", json={"user_id": "a", "text": text})
                    answers.append((response.status_code, response.headers.get("Retry-After")))
                    if response.status_code == 201:
                        acked[response.json()["id"]] = text
                    n += 1

            thread = threading.Thread(target=writer)
            thread.start()
            try:
                for kill in range(2):
                    before = len(acked)
                    _wait_writes(acked, before + 5, thread)
                    _kill(server)
                    restored = _wait_ready(client)
                    print(f"kill {kill + 1}: ready again after {restored:.1f} s")
                    _wait_restarts(supervisor, kill + 1)
                before = len(acked)
                _wait_writes(acked, before + 5, thread)  # and writes succeed again
            finally:
                stop.set()
                thread.join(60)
            assert supervisor.last_exit == -signal.SIGKILL
            statuses = {status for status, _ in answers}
            assert statuses <= {201, 503}, statuses
            assert 503 in statuses, "the kills were not seen by any request"
            assert all(retry and int(retry) > 0 for status, retry in answers if status == 503)
            stored = {m["id"]: m["text"] for m in client.get(
                "/v1/memories", params={"user_id": "a", "limit": 1000}).json()["results"]}
            assert acked.items() <= stored.items(), "an acknowledged write was lost"
            for memory_id, text in list(acked.items())[::7]:
                hits = client.post("/v1/memories/search", json={
                    "user_id": "a", "query": text, "limit": 3, "mode": "keyword"}).json()
                assert memory_id in [h["id"] for h in hits["results"]]
    finally:
        supervisor.stop()
        server.stop()


def test_a_deliberate_stop_is_not_restarted(tmp_path: Path) -> None:
    server = make_triton(tmp_path)
    server.start()
    supervisor = TritonSupervisor(server, backoff_s=0.1, poll_s=0.05).start()
    try:
        supervisor.stop()  # supervision off first, as the launcher does
        server.stop()
        assert not server.running and supervisor.restarts == 0
    finally:
        server.stop()


def test_restart_failures_back_off(tmp_path: Path) -> None:
    """A server that cannot come back is retried with growing delays, not in a tight loop."""
    server = make_triton(tmp_path)
    server.start()
    supervisor = TritonSupervisor(server, backoff_s=0.2, max_backoff_s=0.8,
                                  start_timeout_s=5.0).start()
    try:
        server.model_repository = tmp_path / "gone"  # the next start fails at once
        _kill(server)
        wait_for(lambda: supervisor.failures >= 4, "four failed restarts")
        assert supervisor.restarts == 0
        assert supervisor.delays[:4] == [0.2, 0.4, 0.8, 0.8]
    finally:
        supervisor.stop()
        server.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_crashed_server_leaves_no_model_stubs_behind(tmp_path: Path) -> None:
    """SIGKILL of the server alone (a crash, the OOM killer): its python-backend stubs must not
    outlive it. They exit once their parent is gone for good; an unreaped (zombie) server keeps
    them running indefinitely, so the supervisor reaps the server and its group at once, long
    before its next start (30 s away here)."""
    server = make_triton(tmp_path)
    server.start()
    supervisor = TritonSupervisor(server, backoff_s=30.0, poll_s=0.05).start()
    try:
        process = server._process
        assert process is not None and _group_alive(process.pid)
        os.kill(process.pid, signal.SIGKILL)  # the server only, not its group
        process.wait(10)
        # Well before the next start (30 s away): the supervisor reaped the group at once.
        wait_for(lambda: not _group_alive(process.pid), "the dead server's model stubs to exit",
                 timeout_s=20)
        assert supervisor.last_exit == -signal.SIGKILL and supervisor.restarts == 0
    finally:
        supervisor.stop()
        server.stop()
