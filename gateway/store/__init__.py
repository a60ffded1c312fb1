"""Durable state behind one protocol (``base.Store``); SQLite in WAL mode is the backend.

Nothing is imported eagerly: ``gateway.store.Store`` (the protocol) and
``gateway.store.SQLiteStore`` load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.store.base import Store
    from gateway.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore", "Store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from gateway.store.base import Store

        return Store
    if name == "SQLiteStore":
        from gateway.store.sqlite.store import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module 'gateway.store' has no attribute {name!r}")
