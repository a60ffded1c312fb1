"""API keys in their own SQLite file (``MEMORY_DATA_DIR/keys.sqlite3``, WAL).

Apart from the memories database on purpose: credentials do not travel with memory backups
or exports, and ``python -m gateway.keys`` can create and revoke keys while the gateway runs
without ever opening (or migrating) the memories file. Synchronous: the gateway calls it from
one worker thread (``gateway.auth.authenticator``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple
from pathlib import Path

from gateway.store.sqlite.private import make_private
from gateway.store.types import KeyRow

# The api_keys table as each migration creates it; only the scopes it admits differ.
_TABLE = """
    CREATE TABLE {name} (
        key_id     TEXT PRIMARY KEY,
        hash       TEXT NOT NULL,
        tenant     TEXT NOT NULL,
        scope      TEXT NOT NULL CHECK (scope IN ({scopes})),
        name       TEXT NOT NULL DEFAULT '',
        rate_per_s REAL CHECK (rate_per_s IS NULL OR rate_per_s > 0),
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT
    ) WITHOUT ROWID;
"""

MIGRATIONS: list[str] = [
    # 1: hashed keys with their tenant, scope, optional rate and lifetime.
    _TABLE.format(name="api_keys", scopes="'read', 'write', 'admin'"),
    # 2: the operator scope (service-wide actions); a CHECK cannot be altered, so the table
    # is rebuilt with the rows as they are.
    _TABLE.format(name="api_keys_v2", scopes="'read', 'write', 'admin', 'operator'") + """
    INSERT INTO api_keys_v2 SELECT key_id, hash, tenant, scope, name, rate_per_s, created_at,
        expires_at, revoked_at FROM api_keys;
    DROP TABLE api_keys;
    ALTER TABLE api_keys_v2 RENAME TO api_keys;
    """,
]
_FIELDS = ("key_id, hash, tenant, scope, name, rate_per_s, created_at, expires_at, "
           "revoked_at")


def _migrate(conn: sqlite3.Connection) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise RuntimeError(f"keys database version {current} is newer than this gateway knows")
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\n"
                           "COMMIT;")


class SQLiteKeyTable:
    """The ``api_keys`` table of one keys file (implements ``gateway.store.base.KeyTable``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        make_private(self.path)  # key hashes and tenants: the owner's alone
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA busy_timeout = 5000")
            _migrate(conn)
        except BaseException:
            conn.close()  # a damaged keys file leaves no handle open on it
            raise
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def _open_conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("key store is not open")
        return self._conn

    def insert(self, row: KeyRow) -> None:
        self._open_conn.execute(f"INSERT INTO api_keys ({_FIELDS}) VALUES "
                                "(?, ?, ?, ?, ?, ?, ?, ?, ?)", astuple(row))

    def find(self, key_id: str) -> KeyRow | None:
        row = self._open_conn.execute(f"SELECT {_FIELDS} FROM api_keys WHERE key_id = ?",
                                      (key_id,)).fetchone()
        return None if row is None else KeyRow(*row)

    def all(self, tenant: str | None) -> list[KeyRow]:
        where, args = ("WHERE tenant = ?", [tenant]) if tenant is not None else ("", [])
        rows = self._open_conn.execute(
            f"SELECT {_FIELDS} FROM api_keys {where} ORDER BY created_at, key_id", args)
        return [KeyRow(*row) for row in rows]

    def revoke(self, key_id: str, at: str) -> bool:
        """Mark a live key revoked (kept for the record); False if there is none."""
        return self._open_conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (at, key_id)).rowcount == 1
