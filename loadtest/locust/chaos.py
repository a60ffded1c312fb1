"""``python -m loadtest.locust.chaos``: SIGKILL the gateway at random points during ingest, then
check that no acknowledged write was lost and nothing is half-written.

One Triton serves throughout; the gateway (``python -m gateway``, a process of its own) is
started, fed by ``--writers`` threads (single adds and 5-item batches, unique texts and
metadata), killed with SIGKILL after a random 0.2-2 s, and started again, ``--kills`` times or
until ``--budget-s`` runs out. After each restart:

- every memory whose add answered 2xx is there, with its exact text and metadata (all of them,
  every round), and a keyword search for its unique token finds it (each once, after the
  restart that follows its write);
- the store agrees with itself: each memory has one lexical row and an ADD event, each vector
  has the model's dimension; a batch that was not acknowledged is all there or not at all;
- the index was rebuilt from the store (its size equals the memory count).

With ``--store-url postgresql://...`` the gateway runs on that (empty) PostgreSQL database
instead of its SQLite file, and the same checks read PostgreSQL.

The report (``loadtest/results/chaos-<time>.json``) lists kills, acknowledged writes, lost
writes and inconsistencies.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.settings import ROOT
from loadtest.paths import RESULTS
from loadtest.stack import free_port, triton_server

READY_TIMEOUT_S = 120.0
BATCH = 5
REQUEST_TIMEOUT_S = 30.0


@dataclass
class Report:
    kills: int = 0
    acknowledged: int = 0  # writes (memories) that answered 2xx
    lost: int = 0  # acknowledged but missing or changed after a restart
    inconsistencies: int = 0
    unacknowledged_batches: int = 0  # batches cut off by a kill (checked all-or-nothing)
    searches_checked: int = 0
    restart_s: list[float] = field(default_factory=list)  # start -> /readyz 200, per restart
    problems: list[str] = field(default_factory=list)  # the first few, for the reader
    duration_s: float = 0.0

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)


@dataclass
class Ledger:
    """What the writers sent and what was acknowledged, shared by the writer threads."""

    acked: dict[str, tuple[str, str, dict[str, Any]]] = field(default_factory=dict)  # id->...
    pending_batches: list[tuple[str, list[str]]] = field(default_factory=list)  # user, texts
    lock: threading.Lock = field(default_factory=threading.Lock)


class Gateway:
    """One ``python -m gateway`` process on a fixed port and data directory."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.url = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "gateway"], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited at start-up; see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            if time.monotonic() - started > READY_TIMEOUT_S:
                raise RuntimeError(f"gateway not ready in {READY_TIMEOUT_S} s; see {self.log}")
            time.sleep(0.1)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def _writer(url: str, user: str, round_: int, ledger: Ledger, stop: threading.Event,
            rng: random.Random) -> None:
    n = 0
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
        while not stop.is_set():
            count = BATCH if rng.random() < 0.3 else 1
            items = []
            for _ in range(count):
                token = f"tok{uuid.uuid4().hex[:12]}"
                items.append({"user_id": user,
                              "text": f"chaos round {round_} note {n} {token} ünïcode ✓",
                              "metadata": {"round": round_, "n": n, "token": token,
                                           "nested": {"ok": True, "x": [1, 2.5, None]}}})
                n += 1
            texts = [item["text"] for item in items]
            if count > 1:
                with ledger.lock:
                    ledger.pending_batches.append((user, texts))
            try:
                if count == 1:
                    response = http.post("/v1/memories", json=items[0])
                    results = [response.json()] if response.status_code == 201 else []
                else:
                    response = http.post("/v1/memories/batch", json={"items": items})
                    results = response.json()["results"] if response.status_code == 201 else []
            except (httpx.HTTPError, ValueError):
                return  # the gateway died under us: this write is not acknowledged
            with ledger.lock:
                for item, result in zip(items, results, strict=False):
                    ledger.acked[result["id"]] = (user, item["text"], item["metadata"])
                if count > 1 and results:
                    ledger.pending_batches.remove((user, texts))


@dataclass
class StoreRows:
    """What the store holds, read behind the gateway's back for the consistency checks."""

    ids: set[str]
    lexical: list[str]  # memory id of every lexical document
    added: set[str]  # memory ids with an ADD event
    bad_vectors: int  # vectors whose byte length is not the model's dimension
    texts: set[tuple[str, str]]  # (user, text)


def _sqlite_rows(db: Path, dim: int) -> StoreRows:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return StoreRows(
            ids={r[0] for r in conn.execute("SELECT id FROM memories")},
            lexical=[r[0] for r in conn.execute("SELECT memory_id FROM lexical_docs")],
            added={r[0] for r in conn.execute(
                "SELECT memory_id FROM history WHERE event = 'ADD'")},
            bad_vectors=conn.execute("SELECT count(*) FROM memories WHERE length(embedding) "
                                     "!= ?", (4 * dim,)).fetchone()[0],
            texts={(r[0], r[1]) for r in conn.execute("SELECT user_id, text FROM memories")})
    finally:
        conn.close()


def _postgres_rows(url: str, dim: int) -> StoreRows:
    import psycopg

    with psycopg.connect(url) as conn:
        return StoreRows(
            ids={str(r[0]) for r in conn.execute("SELECT id FROM memories")},
            lexical=[str(r[0]) for r in conn.execute("SELECT memory_id FROM lexical_docs")],
            added={str(r[0]) for r in conn.execute(
                "SELECT memory_id FROM history WHERE event = 'ADD'")},
            bad_vectors=conn.execute("SELECT count(*) FROM memories WHERE "
                                     "octet_length(embedding) != %s", (4 * dim,)).fetchone()[0],
            texts={(r[0], r[1]) for r in conn.execute("SELECT user_id, text FROM memories")})


def _check_store(rows: StoreRows, ledger: Ledger, report: Report) -> int:
    """Row, lexical index, history and vectors agree; unacknowledged batches all-or-nothing."""
    checks = {
        "lexical rows differ from memories":
            set(rows.lexical) != rows.ids or len(rows.lexical) != len(rows.ids),
        "memories without an ADD event": not rows.ids <= rows.added,
        f"{rows.bad_vectors} vectors of the wrong size": rows.bad_vectors > 0,
    }
    for what, failed in checks.items():
        if failed:
            report.inconsistencies += 1
            report.problem(what)
    report.unacknowledged_batches += len(ledger.pending_batches)
    for user, batch in ledger.pending_batches:
        present = sum((user, text) in rows.texts for text in batch)
        if present not in (0, len(batch)):
            report.inconsistencies += 1
            report.problem(f"batch half-written: {present} of {len(batch)}")
    return len(rows.ids)


def _rows(work: Path, store_url: str | None, dim: int) -> StoreRows:
    if store_url:
        return _postgres_rows(store_url, dim)
    return _sqlite_rows(work / "data" / "memories.sqlite3", dim)


def _listed(http: httpx.Client, user: str) -> dict[str, dict[str, Any]]:
    """Every memory of ``user`` by id, through the API's paging."""
    out: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"user_id": user, "limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = http.get("/v1/memories", params=params).json()
        out.update((m["id"], m) for m in page["results"])
        cursor = page.get("next_cursor")
        if not cursor:
            return out


def _check_acknowledged(url: str, ledger: Ledger, searched: set[str], report: Report) -> None:
    """All acknowledged memories intact (every round); the new ones found by keyword search."""
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as http:
        users = {user for user, _, _ in ledger.acked.values()}
        stored = {user: _listed(http, user) for user in users}
        for memory_id, (user, text, metadata) in ledger.acked.items():
            got = stored[user].get(memory_id)
            if got is None or got["text"] != text or got["metadata"] != metadata:
                report.lost += 1
                report.problem(f"lost or changed: {memory_id}")
                continue
            if memory_id in searched:
                continue
            found = http.post("/v1/memories/search", json={
                "user_id": user, "query": metadata["token"], "mode": "keyword", "limit": 3})
            report.searches_checked += 1
            searched.add(memory_id)
            if found.status_code != 200 or memory_id not in [
                    h["id"] for h in found.json()["results"]]:
                report.inconsistencies += 1
                report.problem(f"not found by search: {memory_id}")


def _index_size(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("memory_index_vectors "):
            return float(line.split()[-1])
    raise RuntimeError("no memory_index_vectors in /metrics")


@contextlib.contextmanager
def _workdir(path: str | None) -> Iterator[Path]:
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path)
    else:
        with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
            yield Path(tmp)


def run(kills: int, budget_s: float, writers: int, seed: int, workdir: str | None,
        dim: int = 384, store_url: str | None = None) -> Report:
    rng = random.Random(seed)
    report = Report()
    ledger = Ledger()
    searched: set[str] = set()
    started = time.monotonic()
    with _workdir(workdir) as work:
        triton = triton_server(work)
        with triton:
            env = dict(os.environ) | {
                "GATEWAY_PORT": str(free_port()), "MEMORY_DATA_DIR": str(work / "data"),
                "MEMORY_TRITON_MANAGED": "false", "MEMORY_AUTH": "off",
                "MEMORY_TRITON_GRPC_PORT": str(triton.grpc_port),
                "MEMORY_TRITON_HTTP_PORT": str(triton.http_port),
            } | ({"MEMORY_STORE_URL": store_url} if store_url else {})
            gateway = Gateway(env, work / "gateway.log")
            gateway.start()
            try:
                while report.kills < kills and time.monotonic() - started < budget_s:
                    stop = threading.Event()
                    threads = [threading.Thread(
                        target=_writer, args=(gateway.url, f"chaos-{w}", report.kills, ledger,
                                              stop, random.Random(rng.random())))
                        for w in range(writers)]
                    for thread in threads:
                        thread.start()
                    time.sleep(rng.uniform(0.2, 2.0))  # a random point in the ingest
                    gateway.kill()
                    report.kills += 1
                    stop.set()
                    for thread in threads:
                        thread.join(REQUEST_TIMEOUT_S + 5)
                    report.restart_s.append(gateway.start())
                    count = _check_store(_rows(work, store_url, dim), ledger, report)
                    if _index_size(gateway.url) != count:
                        report.inconsistencies += 1
                        report.problem(f"index holds {_index_size(gateway.url)} of {count}")
                    ledger.pending_batches.clear()  # settled: checked all-or-nothing once
                    _check_acknowledged(gateway.url, ledger, searched, report)
                    report.acknowledged = len(ledger.acked)
                    print(f"kill {report.kills}: {report.acknowledged} acknowledged, "
                          f"lost {report.lost}, inconsistencies {report.inconsistencies}, "
                          f"restart {report.restart_s[-1]:.1f} s", file=sys.stderr, flush=True)
            finally:
                gateway.stop()
    report.duration_s = round(time.monotonic() - started, 1)
    return report


def _triton_pid(gateway_pid: int) -> int:
    """The ``tritonserver`` the gateway process started (its managed child)."""
    for task in Path(f"/proc/{gateway_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"tritonserver" in command:
                return int(child)
    raise RuntimeError("the gateway runs no tritonserver")


def _wait_ready(url: str, deadline_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < deadline_s:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"not ready again within {deadline_s} s")


def run_triton(kills: int, budget_s: float, writers: int, seed: int, workdir: str | None,
               dim: int = 384, store_url: str | None = None) -> Report:
    """SIGKILL the gateway's managed Triton under write load; the gateway's supervisor must
    bring it back (``restart_s``: kill to /readyz 200) and no acknowledged write may be lost."""
    rng = random.Random(seed)
    report = Report()
    ledger = Ledger()
    started = time.monotonic()
    with _workdir(workdir) as work:
        env = dict(os.environ) | {
            "GATEWAY_PORT": str(free_port()), "MEMORY_DATA_DIR": str(work / "data"),
            "MEMORY_TRITON_MANAGED": "true", "MEMORY_AUTH": "off",
            "MEMORY_TRITON_GRPC_PORT": str(free_port()),
            "MEMORY_TRITON_HTTP_PORT": str(free_port()),
            "MEMORY_TRITON_METRICS_PORT": str(free_port()),
            "MEMORY_TRITON_LOG_DIR": str(work),
        } | ({"MEMORY_STORE_URL": store_url} if store_url else {})
        gateway = Gateway(env, work / "gateway.log")
        gateway.start()
        stop = threading.Event()
        threads = [threading.Thread(target=_writer, args=(
            gateway.url, f"chaos-{w}", 0, ledger, stop, random.Random(rng.random())))
            for w in range(writers)]
        for thread in threads:
            thread.start()
        try:
            assert gateway.process is not None
            while report.kills < kills and time.monotonic() - started < budget_s:
                time.sleep(rng.uniform(10.0, 15.0))  # load on a healthy service first
                os.kill(_triton_pid(gateway.process.pid), signal.SIGKILL)
                report.kills += 1
                report.restart_s.append(_wait_ready(gateway.url, 120.0))
                print(f"triton kill {report.kills}: ready again after "
                      f"{report.restart_s[-1]:.1f} s", file=sys.stderr, flush=True)
        finally:
            stop.set()
            for thread in threads:
                thread.join(REQUEST_TIMEOUT_S + 5)
        try:
            _check_store(_rows(work, store_url, dim), ledger, report)
            _check_acknowledged(gateway.url, ledger, set(), report)
            report.acknowledged = len(ledger.acked)
        finally:
            gateway.stop()
    report.duration_s = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.locust.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("gateway", "triton"), default="gateway",
                        help="what to SIGKILL: the gateway, or the Triton it manages")
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--budget-s", type=float, default=1800.0, help="stop after this long")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", help="keep data and logs here (default: a temp dir)")
    parser.add_argument("--store-url", help="run the gateway on this empty PostgreSQL "
                        "database instead of SQLite")
    parser.add_argument("--out", type=Path, help="report JSON (default: loadtest/results/)")
    args = parser.parse_args(argv)
    chaos = run if args.target == "gateway" else run_triton
    report = chaos(args.kills, args.budget_s, args.writers, args.seed, args.workdir,
                   store_url=args.store_url)
    out = args.out or RESULTS / (
        f"chaos-{args.target}-{datetime.now(UTC):%Y%m%d-%H%M%S}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = asdict(report) | {"restart_s_max": max(report.restart_s, default=0.0),
                                "command": "python -m loadtest.locust.chaos " + " ".join(
                                    argv if argv is not None else sys.argv[1:])}
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("kills", "acknowledged", "lost",
                                               "inconsistencies", "duration_s")}))
    print(f"report: {out}", file=sys.stderr)
    return 0 if report.lost == 0 and report.inconsistencies == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
