"""A gateway on PostgreSQL (``MEMORY_STORE_URL``): PostgreSQL going away under it answers 503
with Retry-After, not 500, and requests succeed again once it is back, without a restart
(the pool replaces its dead connections); the SQLite-file tools refuse it clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from support import settings_for
from support.postgres import PostgresServer

from gateway.app import create_app
from gateway.backup.jsonl import export_jsonl
from gateway.backup.snapshot import BackupError, create_backup
from gateway.triton import TritonServer


def test_postgres_down_is_a_503_then_requests_recover(
        triton: TritonServer, tmp_path: Path, postgres_server: PostgresServer,
        postgres_url: str) -> None:
    settings = settings_for(triton, tmp_path / "data", store_url=SecretStr(postgres_url))
    with TestClient(create_app(settings)) as client:
        added = client.post("/v1/memories", json={"user_id": "alice", "text": "kept safe"})
        assert added.status_code == 201, added.text
        memory_id = added.json()["id"]
        postgres_server.stop()
        try:
            for method, path, body in (
                    ("GET", f"/v1/memories/{memory_id}", None),
                    ("POST", "/v1/memories", {"user_id": "alice", "text": "while down"}),
                    ("POST", "/v1/memories/search", {"user_id": "alice", "query": "kept",
                                                     "mode": "keyword"})):
                answer = client.request(method, path, json=body)
                assert answer.status_code == 503, (path, answer.text)
                assert int(answer.headers["Retry-After"]) > 0
                assert "detail" in answer.json()
        finally:
            postgres_server.start()
        again = client.get(f"/v1/memories/{memory_id}")
        assert again.status_code == 200 and again.json()["text"] == "kept safe"
        found = client.post("/v1/memories/search",
                            json={"user_id": "alice", "query": "kept", "mode": "keyword"})
        assert [r["id"] for r in found.json()["results"]] == [memory_id]
        # nothing of the refused write was stored
        listed = client.get("/v1/memories", params={"user_id": "alice"}).json()
        assert [m["text"] for m in listed["results"]] == ["kept safe"]


def test_file_backups_refuse_a_postgres_store_and_name_pg_dump(
        triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data",
                            store_url=SecretStr("postgresql://nobody@127.0.0.1:1/none"))
    with pytest.raises(BackupError, match="pg_dump"):
        create_backup(settings, tmp_path / "backup")
    with pytest.raises(BackupError, match="pg_dump"):
        export_jsonl(settings, tmp_path / "out.jsonl")


def test_store_url_must_be_postgresql(triton: TritonServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        settings_for(triton, tmp_path, store_url=SecretStr("mysql://x/y"))


def test_a_nul_character_postgres_cannot_store_is_a_422(
        triton: TritonServer, tmp_path: Path, postgres_url: str) -> None:
    settings = settings_for(triton, tmp_path / "data", store_url=SecretStr(postgres_url))
    with TestClient(create_app(settings)) as client:
        refused = client.post("/v1/memories", json={"user_id": "alice", "text": "hello",
                                                    "metadata": {"k": "a\u0000b"}})
        assert refused.status_code == 422 and "NUL" in refused.json()["detail"]
        listed = client.get("/v1/memories", params={"user_id": "alice"}).json()
        assert listed["results"] == []  # nothing was written
