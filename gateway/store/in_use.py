"""Who uses a store file: gateways may share it, restore and import need it alone.

A running gateway keeps the SQLite file open and its vector index in memory, so a restore
under it would be renamed away from its open handle, and an import would never reach its
index. Gateways hold a shared ``flock`` on ``<store>.in-use`` while they run; ``restore`` and
``import`` take it exclusively and refuse at once while a gateway holds it (and a gateway
refuses to start while they run). The kernel drops a process's locks when it dies, so a
crashed gateway never leaves a stale one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

SUFFIX = ".in-use"


class StoreBusy(Exception):
    """Another process holds the store in a way that excludes this use."""


class StoreUse:
    """A held lock on ``<store>.in-use``; ``release`` (or process exit) lets it go."""

    def __init__(self, store: Path, *, alone: bool) -> None:
        self.path = store.with_name(store.name + SUFFIX)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if alone else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise StoreBusy(
                f"{store} is in use by a running gateway: stop it first" if alone else
                f"{store} is being restored or imported into: start the gateway after that"
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def gateway_use(store: Path) -> StoreUse:
    """Held by a gateway for its lifetime (shared: it only keeps restore and import out)."""
    return StoreUse(store, alone=False)


def sole_use(store: Path) -> StoreUse:
    """Held by restore and import while they change the store under no gateway."""
    return StoreUse(store, alone=True)
