"""Durable state: SQLite in WAL mode, the single source of truth."""

from gateway.store.sqlite import Store

__all__ = ["Store"]
