"""API keys in PostgreSQL (``MEMORY_STORE_URL``): the ``api_keys`` table, in the same database
as the memories (every replica authenticates alike) but versioned on its own
(``keys_schema_version``), so ``python -m gateway.keys`` never migrates the memories.

Synchronous, as ``KeyTable`` is (the gateway calls it from one worker thread): one psycopg
connection in autocommit mode, reopened when the server went away.
"""

from __future__ import annotations

import threading
from dataclasses import astuple
from typing import Any

import psycopg

from gateway.store.postgres.faults import map_postgres_errors
from gateway.store.types import KeyRow

_KEY = 'TEXT COLLATE "C"'
MIGRATIONS: list[str] = [
    # 1: hashed keys with their tenant, scope (operator included), optional rate and lifetime.
    f"""
    CREATE TABLE api_keys (
        key_id     {_KEY} PRIMARY KEY,
        hash       TEXT NOT NULL,
        tenant     {_KEY} NOT NULL,
        scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin', 'operator')),
        name       TEXT NOT NULL DEFAULT '',
        rate_per_s DOUBLE PRECISION CHECK (rate_per_s IS NULL OR rate_per_s > 0),
        created_at {_KEY} NOT NULL,
        expires_at {_KEY},
        revoked_at {_KEY}
    );
    """,
]
KEYS_LOCK = 0x6B657973
_FIELDS = "key_id, hash, tenant, scope, name, rate_per_s, created_at, expires_at, revoked_at"


class PostgresKeyTable:
    """The ``api_keys`` table of one database (implements ``gateway.store.base.KeyTable``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (KEYS_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS keys_schema_version "
                             "(version INTEGER NOT NULL)")
                row = conn.execute("SELECT max(version) FROM keys_schema_version").fetchone()
                current = (row[0] if row else 0) or 0
                if current > len(MIGRATIONS):
                    raise RuntimeError(
                        f"keys schema version {current} is newer than this gateway knows")
                for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
                    conn.execute(script.encode())
                    conn.execute("INSERT INTO keys_schema_version VALUES (%s)", (version,))
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _execute(self, sql: str, args: tuple[object, ...]) -> tuple[list[tuple[Any, ...]], int]:
        """(rows, rowcount) of one statement, on the one connection (one thread at a time)."""
        if self._conn is None:
            raise RuntimeError("key store is not open")
        with self._lock, map_postgres_errors():  # unreachable: 503, as for the store
            for attempt in (1, 2):
                if self._conn.closed or self._conn.broken:  # the server restarted: reconnect
                    self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
                try:
                    cursor = self._conn.execute(sql.encode(), args)
                except psycopg.OperationalError:
                    # a connection the server dropped (restart) fails before running the
                    # statement: one retry on a fresh connection
                    if attempt == 2 or not (self._conn.closed or self._conn.broken):
                        raise
                    continue
                rows = cursor.fetchall() if cursor.description is not None else []
                return rows, cursor.rowcount
            raise AssertionError("unreachable")

    def insert(self, row: KeyRow) -> None:
        self._execute(f"INSERT INTO api_keys ({_FIELDS}) VALUES "
                      "(%s, %s, %s, %s, %s, %s, %s, %s, %s)", astuple(row))

    def find(self, key_id: str) -> KeyRow | None:
        rows, _ = self._execute(f"SELECT {_FIELDS} FROM api_keys WHERE key_id = %s", (key_id,))
        return KeyRow(*rows[0]) if rows else None

    def all(self, tenant: str | None) -> list[KeyRow]:
        where, args = ("WHERE tenant = %s", (tenant,)) if tenant is not None else ("", ())
        rows, _ = self._execute(f"SELECT {_FIELDS} FROM api_keys {where} "
                                "ORDER BY created_at, key_id", args)
        return [KeyRow(*row) for row in rows]

    def revoke(self, key_id: str, at: str) -> bool:
        _, changed = self._execute(
            "UPDATE api_keys SET revoked_at = %s WHERE key_id = %s AND revoked_at IS NULL",
            (at, key_id))
        return changed == 1
