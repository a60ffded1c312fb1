"""A throwaway PostgreSQL server for a test session, and a fresh database per test.

``initdb`` into a temporary directory, a free loopback port, the unix socket in that directory,
``fsync`` off (the data dies with the session anyway). As root the server runs as the
``postgres`` OS user (PostgreSQL refuses to run as root). Where ``initdb`` is missing the
tests that need it skip with the reason (``make test`` installs Debian's ``postgresql`` first).
``stop``/``start`` keep the port and data, so a test can take the server away under a running
gateway and bring it back.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from support.servers import free_ports

PG_BIN_DIRS = (*sorted(map(str, Path("/usr/lib/postgresql").glob("*/bin")), reverse=True),
               "/usr/local/bin", "/usr/bin")
SERVER_USER = "postgres"


def find_binary(name: str) -> str | None:
    """``initdb``/``pg_ctl``/``psql``: Debian's versioned directory first, then the PATH."""
    for folder in PG_BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def unavailable_reason() -> str | None:
    """Why no server can be started here (None: it can)."""
    if find_binary("initdb") is None or find_binary("pg_ctl") is None:
        return "PostgreSQL is not installed (no initdb/pg_ctl); `make test` installs it"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root without a {SERVER_USER!r} OS user to run PostgreSQL as"
    return None


class PostgresServer:
    """One server in a temporary directory; ``database()`` makes a fresh database."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_ports(1)[0]
        self._names = itertools.count(1)
        self._as_root = os.geteuid() == 0

    # -- process control --------------------------------------------------------------------
    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._as_root:
            kwargs["user"] = SERVER_USER
            kwargs["group"] = SERVER_USER
        return subprocess.run(list(argv), capture_output=True, text=True, check=False,
                              cwd=self.root, **kwargs)  # type: ignore[call-overload]

    def _check(self, done: subprocess.CompletedProcess[str], what: str) -> None:
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr}\n{log}")

    def init(self) -> PostgresServer:
        if self._as_root:
            owner = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        initdb = find_binary("initdb")
        assert initdb is not None
        self._check(self._run(initdb, "-D", str(self.data), "--auth=trust", "-U", "postgres",
                              "--no-sync", "-E", "UTF8", "--locale=C"), "initdb")
        return self

    def start(self) -> None:
        pg_ctl = find_binary("pg_ctl")
        assert pg_ctl is not None
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200 -c shared_buffers=64MB")
        self._check(self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options,
                              "-w", "-t", "120", "start"), "pg_ctl start")

    def stop(self) -> None:
        pg_ctl = find_binary("pg_ctl")
        assert pg_ctl is not None
        self._check(self._run(pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "120",
                              "stop"), "pg_ctl stop")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- databases --------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database (a copy of ``template0``: fast); returns its URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)


OWNER_FILE = "owner.pid"  # the test process that started a server, beside its data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_orphans() -> None:
    """Stop and remove servers left by test sessions that were killed before their teardown
    (a timeout, a SIGKILL): their owner process is gone, their postmaster still runs."""
    for root in Path(tempfile.gettempdir()).glob("pg-test-*"):
        try:
            owner = int((root / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        orphan = PostgresServer.__new__(PostgresServer)
        orphan.root, orphan.data, orphan.log = root, root / "data", root / "server.log"
        orphan._as_root = os.geteuid() == 0
        if (orphan.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError, OSError):
                orphan.stop()
        shutil.rmtree(root, ignore_errors=True)


def started() -> PostgresServer:
    """A server initialised and running (the caller destroys it)."""
    reap_orphans()
    server = PostgresServer().init()
    (server.root / OWNER_FILE).write_text(str(os.getpid()))
    try:
        server.start()
    except BaseException:
        shutil.rmtree(server.root, ignore_errors=True)
        raise
    return server
