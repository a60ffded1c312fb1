"""PostgreSQL failures translated into the gateway's error tree.

The server unreachable (refused, restarting, a connection cut mid-query, no pooled connection
within the wait) is the operator's to fix and the client's to wait out: 503 with Retry-After,
not a 500. The pool replaces broken connections, so requests recover when the server is back,
without a gateway restart. A full disk is 507, as for SQLite. A vector refused for its stale
model version is ``StaleVersion``, for the service to handle. Anything else stays a bug.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import errors
from psycopg_pool import PoolTimeout

from gateway.errors import InvalidInput, StorageFull, StorageUnavailable
from gateway.store.postgres import space_guard
from gateway.store.types import StaleVersion

NUL_REFUSED = ("text and metadata stored in PostgreSQL cannot hold the NUL character "
               "(\\u0000); remove it")


@contextlib.contextmanager
def map_postgres_errors() -> Iterator[None]:
    try:
        yield
    except PoolTimeout as exc:
        raise StorageUnavailable("database unavailable: no connection to PostgreSQL") from exc
    except errors.UntranslatableCharacter as exc:  # "\u0000" inside jsonb
        raise InvalidInput(NUL_REFUSED) from exc
    except psycopg.DataError as exc:
        if "NUL" not in str(exc):  # psycopg refuses a NUL in text before sending it
            raise
        raise InvalidInput(NUL_REFUSED) from exc
    except errors.DiskFull as exc:
        raise StorageFull("storage full: writes are refused until disk space is freed") from exc
    except (errors.AdminShutdown, errors.CannotConnectNow, errors.CrashShutdown,
            errors.ReadOnlySqlTransaction) as exc:
        raise StorageUnavailable(f"database unavailable ({type(exc).__name__})") from exc
    except psycopg.OperationalError as exc:
        raise StorageUnavailable("database unavailable: the connection to PostgreSQL "
                                 "failed") from exc
    except psycopg.Error as exc:  # a vector refused for its stale version (``space_guard``)
        if exc.sqlstate != space_guard.SQLSTATE:
            raise
        raise StaleVersion(exc.diag.message_primary or str(exc)) from exc
