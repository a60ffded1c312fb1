"""Store fixtures: a stored memory built in one line, and a store opened on a file."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from gateway.domain.model import Memory, StoredMemory
from gateway.memory.ids import uuid7
from gateway.memory.service import utc_now
from gateway.store.sqlite.store import SQLiteStore

T = TypeVar("T")


def memory(user: str = "alice", text: str = "hello", **fields: object) -> StoredMemory:
    """A memory of ``user`` with a constant 4-d vector; ``fields`` override any column."""
    now = utc_now()
    base = dict(id=uuid7(), user_id=user, text=text, agent_id=None, run_id=None, metadata={},
                priority=5, created_at=now, updated_at=now, embedding_model="embedder:1",
                occurred_at=now)
    base.update(fields)
    return StoredMemory(Memory(**base), np.ones(4, dtype=np.float32) / 2)  # type: ignore[arg-type]


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run an async store scenario from a sync test."""
    return asyncio.run(coro)


async def opened(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    return store
