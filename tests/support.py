"""Helpers shared by test modules (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import numpy as np

from gateway.domain.model import Memory, StoredMemory
from gateway.memory.ids import uuid7
from gateway.memory.service import utc_now
from gateway.settings import ROOT, Settings
from gateway.store.sqlite.store import SQLiteStore
from gateway.triton import TritonServer

MODEL_REPOSITORY = ROOT / "model_repository"


def free_ports(count: int) -> list[int]:
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def make_triton(
    log_dir: Path, repository: Path = MODEL_REPOSITORY, models: tuple[str, ...] = ("embedder",)
) -> TritonServer:
    """A (not yet started) server on free loopback ports."""
    http, grpc, metrics = free_ports(3)
    return TritonServer(
        model_repository=repository,
        models=models,
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        log_file=log_dir / f"triton-{grpc}.log",
    )



def settings_for(triton: TritonServer, data_dir: Path, **overrides: object) -> Settings:
    return Settings(
        data_dir=data_dir,
        model_repository=triton.model_repository,
        triton_managed=False,
        triton_host=triton.host,
        triton_grpc_port=triton.grpc_port,
        triton_http_port=triton.http_port,
        triton_metrics_port=triton.metrics_port,
        inference_timeout_s=5.0,
        **overrides,  # type: ignore[arg-type]
    )


def memory(user: str = "alice", text: str = "hello", **fields: object) -> StoredMemory:
    now = utc_now()
    base = dict(id=uuid7(), user_id=user, text=text, agent_id=None, run_id=None, metadata={},
                priority=5, created_at=now, updated_at=now, embedding_model="embedder:1",
                occurred_at=now)
    base.update(fields)
    return StoredMemory(Memory(**base), np.ones(4, dtype=np.float32) / 2)  # type: ignore[arg-type]


def run(coro):  # tiny helper for async store calls
    return asyncio.run(coro)


async def opened(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    await store.open()
    return store
