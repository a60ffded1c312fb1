"""API keys in their own SQLite file (``MEMORY_DATA_DIR/keys.sqlite3``, WAL).

Apart from the memories database on purpose: credentials do not travel with memory backups
or exports, and ``python -m gateway.keys`` can create and revoke keys while the gateway runs
without ever opening (or migrating) the memories file. The gateway reads a key's row on every
authenticated request, so a revocation takes effect on the next request.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.auth.keys import NewKey, generate
from gateway.auth.principal import KeyScope

MIGRATIONS: list[str] = [
    # 1: hashed keys with their tenant, scope, optional rate and lifetime.
    """
    CREATE TABLE api_keys (
        key_id     TEXT PRIMARY KEY,
        hash       TEXT NOT NULL,
        tenant     TEXT NOT NULL,
        scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
        name       TEXT NOT NULL DEFAULT '',
        rate_per_s REAL CHECK (rate_per_s IS NULL OR rate_per_s > 0),
        created_at TEXT NOT NULL,
        expires_at TEXT,
        revoked_at TEXT
    ) WITHOUT ROWID;
    """,
]


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    hash: str
    tenant: str
    scope: KeyScope
    name: str
    rate_per_s: float | None
    created_at: str
    expires_at: str | None
    revoked_at: str | None

    def usable(self, now: datetime) -> str | None:
        """None if the key may be used now, else why not."""
        if self.revoked_at is not None:
            return "API key revoked"
        if self.expires_at is not None and self.expires_at <= utc_text(now):
            return "API key expired"
        return None


def _migrate(conn: sqlite3.Connection) -> None:
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise RuntimeError(f"keys database version {current} is newer than this gateway knows")
    for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\n"
                           "COMMIT;")


class KeyStore:
    """Synchronous access to the keys file; the gateway calls it from one worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def open(self) -> KeyStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA busy_timeout = 5000")
            _migrate(conn)
        except BaseException:
            conn.close()  # a damaged keys file leaves no handle open on it
            raise
        self._conn = conn
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> KeyStore:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("key store is not open")
        return self._conn

    def create(self, tenant: str, scope: KeyScope, *, name: str = "",
               expires_at: datetime | None = None, rate_per_s: float | None = None,
               now: datetime | None = None) -> tuple[NewKey, KeyRecord]:
        new = generate()
        record = KeyRecord(new.key_id, new.hash, tenant, scope, name, rate_per_s,
                           utc_text(now or datetime.now(UTC)),
                           utc_text(expires_at) if expires_at else None, None)
        self.conn.execute(
            "INSERT INTO api_keys (key_id, hash, tenant, scope, name, rate_per_s, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.key_id, record.hash, tenant, scope.label, name, rate_per_s,
             record.created_at, record.expires_at),
        )
        return new, record

    def find(self, key_id: str) -> KeyRecord | None:
        row = self.conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return None if row is None else _record(row)

    def all(self, tenant: str | None = None) -> list[KeyRecord]:
        where, args = ("WHERE tenant = ?", [tenant]) if tenant is not None else ("", [])
        rows = self.conn.execute(f"SELECT * FROM api_keys {where} ORDER BY created_at, key_id",
                                 args)
        return [_record(r) for r in rows]

    def revoke(self, key_id: str, now: datetime | None = None) -> bool:
        """Mark a key revoked (kept for the record); False if there is no such live key."""
        cursor = self.conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
            (utc_text(now or datetime.now(UTC)), key_id),
        )
        return cursor.rowcount == 1


def _record(row: sqlite3.Row) -> KeyRecord:
    return KeyRecord(row["key_id"], row["hash"], row["tenant"], KeyScope.parse(row["scope"]),
                     row["name"], row["rate_per_s"], row["created_at"], row["expires_at"],
                     row["revoked_at"])
