"""The native load generator (loadtest/wrk.py): real wrk processes against a small real HTTP
server; every body of each job's file is posted to its target, and the figures are parsed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loadtest import wrk

pytestmark = pytest.mark.skipif(wrk.binary() is None,
                                reason="wrk is not installed (make system-packages installs it)")


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as wrk expects
    seen: dict[str, set[str]]
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            self.seen.setdefault(self.server.name, set()).add(body["user_id"])  # type: ignore[attr-defined]
        status = 503 if body["user_id"] == "refused" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[tuple[dict[str, set[str]], list[str]]]:
    seen: dict[str, set[str]] = {}
    _Recorder.seen = seen
    started = []
    for name in ("a", "b"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        server.name = name  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
    yield seen, [f"http://127.0.0.1:{s.server_address[1]}" for s in started]
    for server in started:
        server.shutdown()
        server.server_close()


def test_each_job_posts_its_own_bodies_to_its_own_target(servers) -> None:
    seen, (a, b) = servers
    jobs = [(a, "/v1/memories/search", [{"user_id": "u1"}, {"user_id": "u2"}]),
            (b, "/v1/memories/search", [{"user_id": "u3"}, {"user_id": "refused"}])]
    first, second = wrk.run_many(jobs, connections=2, seconds=1)
    assert seen == {"a": {"u1", "u2"}, "b": {"u3", "refused"}}
    assert first.requests > 0 and first.non_2xx == 0 and first.errors == 0
    assert first.requests_per_s > 0 and 0 < first.p50_ms <= first.p99_ms
    assert 0 < second.non_2xx < second.requests  # the refused half is counted, not hidden


def test_parse_reads_wrk_units() -> None:
    assert wrk._ms("250.00us") == pytest.approx(0.25)
    assert wrk._ms("1.50s") == pytest.approx(1500.0)
    assert wrk._ms("12.3ms") == pytest.approx(12.3)
