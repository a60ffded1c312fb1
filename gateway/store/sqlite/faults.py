"""SQLite failures of the disk under the store, translated into the gateway's error tree.

A full disk is the operator's to fix and the client's to wait out: 507 with a detail and
Retry-After. A read-only or failing disk is 503 the same way. Both leave the database as it
was: the transaction that hit the error is rolled back, and reads go on working. A vector
refused for its stale model version (``space_guard``) is ``StaleVersion``, for the service to
handle. Any other SQLite error is a bug and stays one.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from gateway.errors import StorageFull, StorageUnavailable
from gateway.store.sqlite import space_guard
from gateway.store.types import StaleVersion

_UNAVAILABLE = ("SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN")


@contextlib.contextmanager
def map_sqlite_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        if space_guard.refused(exc):
            raise StaleVersion(str(exc)) from exc
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name == "SQLITE_FULL":
            raise StorageFull("storage full: writes are refused until disk space is freed; "
                              "reads keep working") from exc
        if name.startswith(_UNAVAILABLE):
            raise StorageUnavailable(f"storage unavailable for writes ({name}); reads keep "
                                     "working") from exc
        raise
