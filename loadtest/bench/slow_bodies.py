"""``make bench-slow-bodies``: a keyed client's search latency while an anonymous client holds
slow-body connections open, against idle (issue 19, finding 1).

One Triton server and one gateway process (``loadtest.stack``) with keys required. A keyed
client adds ``--memories`` memories (embedded by Triton), then the run alternates, ``--rounds``
times: ``--searches`` idle searches, then as many searches while an attacker without a key
keeps ``--connections`` connections open, each announcing a 16 MB body to one of ``--paths``
(in turn) and sending one byte of it every ``--drip-s`` seconds. A connection the gateway
answers and closes is opened again at the attacker's next tick, so the attacker keeps trying
for the whole block. Alternating spreads the drift of a shared machine over both sides.

Reported: p50/p99 (and p90, max) idle and under attack, their ratio (target: p99 under attack
<= 2x idle p99), and what the attacker saw (connections opened, answers by status, connections
the gateway left open at each tick).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import selectors
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx

from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from loadtest.bench.latency import percentiles, text_bodies, timed_searches
from loadtest.bench.report_file import write_report
from loadtest.paths import RESULTS
from loadtest.population import memory_text
from loadtest.stack import gateway_process, triton_server

TARGET_RATIO = 2.0
ANNOUNCED_BYTES = 16 * 1024 * 1024 - 1  # just under the default body cap
DEFAULT_PATHS = "/v1/memories,/v1/memories/search,/v1/memories/batch"
USER = "bench-user"
SEED_BATCH = 100


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class SlowBodies:
    """The attacker: ``count`` connections without a key, each announcing a large body and
    dripping it a byte per tick; a connection closed by the gateway is opened again next tick."""

    def __init__(self, port: int, count: int, paths: list[str], drip_s: float) -> None:
        self.port, self.count, self.paths, self.drip_s = port, count, paths, drip_s
        self.opened = 0
        self.statuses: Counter[str] = Counter()
        self.open_at_tick: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slow-bodies", daemon=True)
        self._selector = selectors.DefaultSelector()
        self._socks: set[socket.socket] = set()

    def __enter__(self) -> SlowBodies:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for sock in list(self._socks):
            self._close(sock)
        self._selector.close()

    def _open(self) -> None:
        path = self.paths[self.opened % len(self.paths)]
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Content-Type: application/json\r\n"
                         f"Content-Length: {ANNOUNCED_BYTES}\r\n\r\n{{".encode())
        except OSError:
            self.statuses["connect error"] += 1
            return
        sock.setblocking(False)
        self.opened += 1
        self._socks.add(sock)
        self._selector.register(sock, selectors.EVENT_READ, b"")

    def _close(self, sock: socket.socket) -> None:
        self._socks.discard(sock)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(sock)
        sock.close()

    def _read(self, sock: socket.socket) -> None:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        seen: bytes = self._selector.get_key(sock).data
        if seen is not None and chunk:
            seen += chunk
            if b"\r\n" in seen:  # the status line: counted once per connection
                self.statuses[seen.split(b" ", 2)[1].decode("latin-1")] += 1
                seen = None  # type: ignore[assignment]
            self._selector.modify(sock, selectors.EVENT_READ, seen)
        if not chunk:
            self._close(sock)

    def _drip(self) -> None:
        for sock in list(self._socks):
            try:
                sock.send(b" ")
            except OSError:
                self._close(sock)

    def _run(self) -> None:
        next_tick = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                self.open_at_tick.append(len(self._socks))
                self._drip()
                while len(self._socks) < self.count and not self._stop.is_set():
                    self._open()
                next_tick = now + self.drip_s
            timeout = max(0.0, min(next_tick - time.monotonic(), 0.1))
            if not self._socks:
                self._stop.wait(timeout)
                continue
            for key, _ in self._selector.select(timeout):
                self._read(key.fileobj)  # type: ignore[arg-type]

    def summary(self) -> dict:
        ticks = self.open_at_tick[1:] or [0]  # the first tick finds none open yet
        return {"connections_opened": self.opened, "answers": dict(self.statuses),
                "open_at_tick": {"min": min(ticks), "max": max(ticks),
                                 "mean": round(sum(ticks) / len(ticks), 1)}}


def make_key(data_dir: Path) -> str:
    """A write key of tenant ``bench`` in the gateway's (not yet opened) keys file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with KeyStore(data_dir / "keys.sqlite3") as store:
        return store.create("bench", KeyScope.WRITE)[0].secret_key


def seed(http: httpx.Client, count: int) -> None:
    texts = random.Random(0)
    for start in range(0, count, SEED_BATCH):
        items = [{"user_id": USER, "text": memory_text(texts)}
                 for _ in range(min(SEED_BATCH, count - start))]
        http.post("/v1/memories/batch", json={"items": items}).raise_for_status()


def searches(http: httpx.Client, count: int, tag: str) -> list[float]:
    """Milliseconds per search (each query text new, so each is embedded)."""
    return timed_searches(http, text_bodies(USER, count, tag))


def table(report: dict) -> str:
    idle, attacked = report["idle"], report["under_attack"]
    rows = ["| | p50 ms | p90 ms | p99 ms | max ms | searches |", "|---|---|---|---|---|---|"]
    for name, figures in (("idle", idle), (f"{report['args']['connections']} slow bodies open",
                                           attacked)):
        rows.append(f"| {name} | {figures['p50_ms']} | {figures['p90_ms']} | "
                    f"{figures['p99_ms']} | {figures['max_ms']} | {figures['n']} |")
    rows.append(f"| ratio | {report['p50_ratio']} | | {report['p99_ratio']} | | |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.slow_bodies",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--paths", default=DEFAULT_PATHS,
                        help="routes the slow bodies are announced to, comma-separated")
    parser.add_argument("--drip-s", type=float, default=1.0,
                        help="seconds between two bytes of each slow body")
    parser.add_argument("--memories", type=int, default=500, help="the keyed user's memories")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--searches", type=int, default=100, help="searches per block")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    env = {"MEMORY_AUTH": "required", "MEMORY_JOBS_USER_SIZE": "0"}
    report: dict = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "gateway_env": env, "load_average": {"start": os.getloadavg()[0]}}
    idle: list[float] = []
    attacked: list[float] = []
    rounds: list[dict] = []
    attacker: dict = {"connections_opened": 0, "answers": Counter(), "open_at_tick": []}
    with tempfile.TemporaryDirectory(prefix="bench-slow-bodies-") as scratch:
        key = make_key(Path(scratch) / "data")
        with triton_server(Path(scratch) / "triton") as triton, \
                gateway_process(triton, Path(scratch) / "data", Path(scratch) / "gateway",
                                env=env) as url, \
                httpx.Client(base_url=url, timeout=30,
                             headers={"Authorization": f"Bearer {key}"}) as http:
            log(f"seeding {args.memories} memories ...")
            seed(http, args.memories)
            searches(http, 20, "warm")
            port = int(url.rsplit(":", 1)[1])
            for n in range(args.rounds):
                quiet = searches(http, args.searches, f"idle{n}")
                with SlowBodies(port, args.connections, paths, args.drip_s) as slow:
                    while len(slow.open_at_tick) < 2:  # the first tick has opened them all
                        time.sleep(0.01)
                    loud = searches(http, args.searches, f"attack{n}")
                    seen = slow.summary()
                idle.extend(quiet)
                attacked.extend(loud)
                attacker["connections_opened"] += seen["connections_opened"]
                attacker["answers"].update(seen["answers"])
                rounds.append({"idle": percentiles(quiet), "under_attack": percentiles(loud),
                               "attacker": seen})
                log(f"round {n}: idle p99 {percentiles(quiet)['p99_ms']} ms, under attack "
                    f"p99 {percentiles(loud)['p99_ms']} ms; attacker {seen}")
    report["load_average"]["end"] = os.getloadavg()[0]
    report["idle"], report["under_attack"] = percentiles(idle), percentiles(attacked)
    report["p50_ratio"] = round(report["under_attack"]["p50_ms"] / report["idle"]["p50_ms"], 2)
    report["p99_ratio"] = round(report["under_attack"]["p99_ms"] / report["idle"]["p99_ms"], 2)
    report["target_ratio"] = TARGET_RATIO
    report["target_met"] = report["p99_ratio"] <= TARGET_RATIO
    report["attacker"] = {"connections_opened": attacker["connections_opened"],
                          "answers": dict(attacker["answers"])}
    report["rounds"] = rounds
    write_report(args.out, "bench-slow-bodies", report, log)
    print(table(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
