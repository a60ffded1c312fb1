"""API keys: who holds which tenant and scope, kept hashed in a table of their own.

The table lives apart from the memories on purpose (``gateway.store.sqlite.keys``): credentials
do not travel with memory backups or exports, and ``python -m gateway.keys`` can create and
revoke keys while the gateway runs without ever opening (or migrating) the memories file. The
gateway reads a key's row on every authenticated request, so a revocation takes effect on the
next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.auth.keys import NewKey, generate
from gateway.auth.principal import KeyScope
from gateway.store.base import KeyTable
from gateway.store.sqlite.keys import SQLiteKeyTable
from gateway.store.types import KeyRow


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


class KeyStore:
    """Synchronous access to the keys; the gateway calls it from one worker thread."""

    def __init__(self, path: Path, table: KeyTable | None = None) -> None:
        self.path = path
        self.table = table if table is not None else SQLiteKeyTable(path)

    def open(self) -> KeyStore:
        self.table.open()
        return self

    def close(self) -> None:
        self.table.close()

    def __enter__(self) -> KeyStore:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()

    def create(self, tenant: str, scope: KeyScope, *, name: str = "",
               expires_at: datetime | None = None, rate_per_s: float | None = None,
               now: datetime | None = None) -> tuple[NewKey, KeyRecord]:
        new = generate()
        record = KeyRecord(new.key_id, new.hash, tenant, scope, name, rate_per_s,
                           utc_text(now or datetime.now(UTC)),
                           utc_text(expires_at) if expires_at else None, None)
        self.table.insert(KeyRow(record.key_id, record.hash, tenant, scope.label, name,
                                 rate_per_s, record.created_at, record.expires_at, None))
        return new, record

    def find(self, key_id: str) -> KeyRecord | None:
        row = self.table.find(key_id)
        return None if row is None else _record(row)

    def all(self, tenant: str | None = None) -> list[KeyRecord]:
        return [_record(r) for r in self.table.all(tenant)]

    def revoke(self, key_id: str, now: datetime | None = None) -> bool:
        """Mark a key revoked (kept for the record); False if there is no such live key."""
        return self.table.revoke(key_id, utc_text(now or datetime.now(UTC)))


def _record(row: KeyRow) -> KeyRecord:
    return KeyRecord(row.key_id, row.hash, row.tenant, KeyScope.parse(row.scope), row.name,
                     row.rate_per_s, row.created_at, row.expires_at, row.revoked_at)
