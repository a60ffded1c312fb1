"""Backup while serving, restore, and the JSON Lines round trip (export -> fresh instance ->
import -> the same 100 queries give the same answers, and every column of every row is back,
a message's conversation context and the archive included)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from reliability.corpus import queries, texts
from support import settings_for, wait_for
from support.jobs import wait_done
from typer.testing import CliRunner

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.backup.jsonl import export_jsonl, import_jsonl
from gateway.backup.snapshot import BackupError, create_backup, restore_backup
from gateway.cli.backup import cli
from gateway.settings import Settings
from gateway.store.in_use import StoreBusy, sole_use
from gateway.store.sqlite.store import SQLiteStore
from gateway.triton import TritonServer

USERS = ["alice", "bob", "carol"]
QUERIES = 100


def _fill(client: TestClient, count: int = 180) -> None:
    items = [{"user_id": USERS[i % len(USERS)], "text": text,
              "metadata": {"n": i, "tag": f"t{i % 4}", "ü": "ok"}, "priority": i % 11}
             for i, text in enumerate(texts(count))]
    response = client.post("/v1/memories/batch", json={"items": items})
    assert response.status_code == 201, response.text


def _answers(client: TestClient) -> list[dict]:
    out = []
    for i, query in enumerate(queries(QUERIES)):
        body = {"user_id": USERS[i % len(USERS)], "query": query, "limit": 5}
        response = client.post("/v1/memories/search", json=body)
        assert response.status_code == 200, response.text
        out.append(response.json())
    return out


def test_backup_and_export_round_trips_give_identical_answers(settings: Settings,
                                                          triton: TritonServer,
                                                          tmp_path: Path) -> None:
    with TestClient(create_app(settings)) as client:
        _fill(client)
        before = _answers(client)
        listing = client.get("/v1/memories", params={"user_id": "bob", "limit": 100}).json()
    assert all(answer["results"] for answer in before), "queries that find nothing prove little"
    create_backup(settings, tmp_path / "backup")
    restored = settings_for(triton, tmp_path / "restored")
    restore_backup(restored, tmp_path / "backup")
    with TestClient(create_app(restored)) as client:
        assert _answers(client) == before  # a restored backup answers all 100 identically
    with_vectors, bare = tmp_path / "with.jsonl", tmp_path / "bare.jsonl"
    assert export_jsonl(settings, with_vectors, vectors=True) == 180
    assert export_jsonl(settings, bare) == 180
    header = json.loads(with_vectors.read_text().splitlines()[0])
    assert header["models"] == {"embedder": "1"} and header["vectors"] is True

    for name, source, embedded in (("vectors", with_vectors, 0), ("bare", bare, 180)):
        fresh = settings_for(triton, tmp_path / f"fresh-{name}")
        report = asyncio.run(import_jsonl(fresh, source))
        assert (report.imported, report.embedded) == (180, embedded)
        with TestClient(create_app(fresh)) as client:
            after = _answers(client)
            assert client.get("/v1/memories", params={"user_id": "bob", "limit": 100}
                              ).json() == listing
        if name == "vectors":
            assert after == before  # byte for byte: ids, texts, metadata, times, scores
        else:  # re-embedded by the same model: same memories in the same order
            for old, new in zip(before, after, strict=True):
                assert [h["id"] for h in new["results"]] == [h["id"] for h in old["results"]]
                for h_old, h_new in zip(old["results"], new["results"], strict=True):
                    assert h_new["score"] == pytest.approx(h_old["score"], abs=1e-5)


def test_import_refuses_duplicates_unless_skipping(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings)) as client:
        _fill(client, 12)
    dump = tmp_path / "dump.jsonl"
    export_jsonl(settings, dump, vectors=True)
    with pytest.raises(BackupError, match="skip-existing"):
        asyncio.run(import_jsonl(settings, dump))
    report = asyncio.run(import_jsonl(settings, dump, skip_existing=True))
    assert (report.imported, report.skipped) == (0, 12)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "something else"}\n')
    with pytest.raises(BackupError, match="not an agent-memory-export"):
        asyncio.run(import_jsonl(settings, bad))


def test_backup_while_writing_is_consistent_and_restores(triton: TritonServer,
                                                         tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "live", auth="required")
    with KeyStore(settings.keys_path) as keys:
        key = keys.create("acme", KeyScope.WRITE)[0].secret_key
    auth = {"Authorization": f"Bearer {key}"}
    acked: list[str] = []
    stop = threading.Event()
    with TestClient(create_app(settings)) as client:
        def writer() -> None:
            n = 0
            while not stop.is_set():
                response = client.post("/v1/memories", headers=auth, json={
                    "user_id": "alice", "text": f"fact number {n}", "metadata": {"n": n}})
                assert response.status_code == 201, response.text
                acked.append(response.json()["id"])
                n += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            wait_for(lambda: len(acked) >= 20 or not thread.is_alive(), "20 acknowledged writes")
            acked_before = list(acked)
            manifest = create_backup(settings, tmp_path / "backup")
        finally:
            stop.set()
            thread.join(timeout=60)
        assert not thread.is_alive()
        total = len(acked)
    assert manifest["memories"] >= len(acked_before) > 0
    assert set(manifest["files"]) == {"memories.sqlite3", "keys.sqlite3"}
    with sqlite3.connect(tmp_path / "backup" / "memories.sqlite3") as copy:
        ids = {r[0] for r in copy.execute("SELECT id FROM memories")}
        added = {r[0] for r in copy.execute("SELECT memory_id FROM history WHERE event='ADD'")}
        lexical = {r[0] for r in copy.execute("SELECT memory_id FROM lexical_docs")}
    copy.close()
    assert set(acked_before) <= ids, "a write acknowledged before the backup is missing"
    assert ids == added == lexical, "the copy is not one consistent snapshot"

    restored = settings_for(triton, tmp_path / "restored", auth="required")
    restore_backup(restored, tmp_path / "backup")
    with pytest.raises(BackupError, match="--force"):
        restore_backup(restored, tmp_path / "backup")
    with TestClient(create_app(restored)) as client:
        page = client.get("/v1/memories", headers=auth,
                          params={"user_id": "alice", "limit": 1000}).json()["results"]
        assert {m["id"] for m in page} == ids
        hit = client.post("/v1/memories/search", headers=auth,
                          json={"user_id": "alice", "query": "fact number 3", "mode": "keyword"})
        assert hit.status_code == 200 and hit.json()["results"], hit.text
    assert total >= len(ids)


def test_restore_refuses_a_damaged_backup(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings)) as client:
        _fill(client, 5)
    create_backup(settings, tmp_path / "b")
    with (tmp_path / "b" / "memories.sqlite3").open("r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00garbage")
    with pytest.raises(BackupError, match="damaged"):
        restore_backup(settings, tmp_path / "b", force=True)


def test_cli_create_restore_export_import(settings: Settings, tmp_path: Path) -> None:
    with TestClient(create_app(settings)) as client:
        _fill(client, 9)
    runner = CliRunner()
    env = {"MEMORY_DATA_DIR": str(settings.data_dir)}
    made = runner.invoke(cli, ["create", str(tmp_path / "bk")], env=env)
    assert made.exit_code == 0 and "backup of 9 memories" in made.output, made.output
    again = runner.invoke(cli, ["create", str(tmp_path / "bk")], env=env)
    assert again.exit_code == 1 and "not empty" in again.output
    out = runner.invoke(cli, ["export", str(tmp_path / "e.jsonl"), "--vectors"], env=env)
    assert out.exit_code == 0 and "exported 9" in out.output
    env2 = {"MEMORY_DATA_DIR": str(tmp_path / "other")}
    imported = runner.invoke(cli, ["import", str(tmp_path / "e.jsonl")], env=env2)
    assert imported.exit_code == 0 and '"imported": 9' in imported.output, imported.output
    back = runner.invoke(cli, ["restore", str(tmp_path / "bk")], env=env2)
    assert back.exit_code == 1 and "--force" in back.output
    back = runner.invoke(cli, ["restore", str(tmp_path / "bk"), "--force"], env=env2)
    assert back.exit_code == 0 and "restored 9 memories" in back.output


def test_restore_and_import_refuse_while_a_gateway_runs(settings: Settings,
                                                        tmp_path: Path) -> None:
    """A running gateway keeps the file open and its index in memory: restore and import
    refuse while it runs and change nothing; a gateway does not start during an import."""
    with TestClient(create_app(settings)) as client:
        _fill(client, 6)
    create_backup(settings, tmp_path / "bk")
    dump = tmp_path / "dump.jsonl"
    export_jsonl(settings, dump, vectors=True)
    env = {"MEMORY_DATA_DIR": str(settings.data_dir)}
    with TestClient(create_app(settings)) as client:
        late = client.post("/v1/memories", json={"user_id": "late", "text": "after the backup"})
        assert late.status_code == 201
        before = client.get("/v1/memories", params={"user_id": "late"}).json()["results"]
        with pytest.raises(StoreBusy, match="running gateway"):
            restore_backup(settings, tmp_path / "bk", force=True)
        with pytest.raises(StoreBusy, match="running gateway"):
            asyncio.run(import_jsonl(settings, dump, skip_existing=True))
        refused = CliRunner().invoke(cli, ["restore", str(tmp_path / "bk"), "--force"], env=env)
        assert refused.exit_code == 1 and "stop it first" in refused.output, refused.output
        after = client.get("/v1/memories", params={"user_id": "late"}).json()["results"]
        assert after == before and len(after) == 1

    importing = sole_use(settings.db_path)  # as an import would hold it
    try:
        with pytest.raises(StoreBusy, match="imported into"), TestClient(create_app(settings)):
            pass
    finally:
        importing.release()
    restore_backup(settings, tmp_path / "bk", force=True)  # the gateway stopped: allowed
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/memories", params={"user_id": "late"}).json()["results"] == []


# Conversations from 2024 (old enough for the compress job): Ana's message, then a reply whose
# marker word (the second item) is in Ana's memory's context only, never in its text.
CONVERSATIONS = [
    ("I baked sourdough bread with rye flour on Sunday.", "crackly",
     "Did the crust come out crackly?"),
    ("My lasagna recipe needs ricotta and fresh basil.", "bechamel",
     "Bechamel or no bechamel?"),
    ("I burned the risotto because I forgot to stir it.", "arborio",
     "Arborio rice scorches quickly."),
    ("We made dumplings with pork and cabbage filling.", "gyoza",
     "Steamed or pan-fried gyoza?"),
    ("We flew to Lisbon and took the tram to Alfama.", "pasteis",
     "Did you try the pasteis?"),
    ("The train from Kyoto to Osaka took fifteen minutes.", "shinkansen",
     "The shinkansen is punctual."),
    ("Our hotel in Reykjavik had a view of the harbour.", "aurora",
     "Any aurora at night?"),
    ("We hiked to the glacier near Chamonix.", "crampons",
     "Were crampons needed?"),
]
MARKERS = [marker for _, marker, _ in CONVERSATIONS]


def _ingest_conversations(client: TestClient) -> None:
    items = [{"user_id": "alice", "agent_id": "chat", "run_id": f"r{day}",
              "metadata": {"day": day}, "messages": [
                  {"role": "user", "name": "Ana", "content": said,
                   "timestamp": f"2024-01-{day + 1:02d}T10:00:00Z"},
                  {"role": "assistant", "content": reply,
                   "timestamp": f"2024-01-{day + 1:02d}T10:01:00Z"}]}
             for day, (said, _, reply) in enumerate(CONVERSATIONS)]
    items.append({"user_id": "alice", "text": "The dentist moved my appointment to Friday.",
                  "expires_at": "2099-06-01T00:00:00Z", "priority": 8})
    response = client.post("/v1/memories/batch", json={"items": items, "dedup": False})
    assert response.status_code == 201, response.text
    started = client.post("/v1/jobs", json={"kind": "compress", "user_id": "alice"})
    assert started.status_code == 202, started.text
    job = wait_done(client, started.json()["id"])
    assert job["status"] == "done" and job["progress"]["archived"] >= 2, job


def _stored(settings: Settings) -> list[dict]:
    """Every column of every memories row, as SQLite holds it."""
    conn = sqlite3.connect(settings.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute("SELECT * FROM memories ORDER BY id")]
    finally:
        conn.close()


def _found_by_context(client: TestClient, row: dict) -> None:
    """Each marker in the row's context (and not its text) finds it by keyword search."""
    markers = [w for w in MARKERS if w in row["context"].lower() and w not in row["text"].lower()]
    assert markers, row
    for marker in markers:
        response = client.post("/v1/memories/search", json={
            "user_id": "alice", "query": marker, "mode": "keyword", "limit": 20,
            "include_archived": row["archived_at"] is not None})
        assert response.status_code == 200, response.text
        assert row["id"] in [hit["id"] for hit in response.json()["results"]], (marker, row)


def test_export_import_round_trips_every_column(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", compress_group_size=4)
    with TestClient(create_app(settings)) as client:
        _ingest_conversations(client)
    before = _stored(settings)
    ana = [r for r in before if r["speaker"] == "Ana"]
    assert len(ana) == len(CONVERSATIONS) and all(r["context"] for r in ana)
    assert any(r["archived_at"] and r["summary_id"] and r["context"] for r in before), \
        "no archived message memory with context: the archive round trip proves little"
    assert any(r["sources"] for r in before) and any(r["expires_at"] for r in before)

    with_vectors, bare = tmp_path / "with.jsonl", tmp_path / "bare.jsonl"
    assert export_jsonl(settings, with_vectors, vectors=True) == len(before)
    assert export_jsonl(settings, bare) == len(before)
    exported = json.loads(with_vectors.read_text().splitlines()[1])
    assert set(exported) == set(before[0]), "the export leaves a column of memories out"

    for name, source in (("vectors", with_vectors), ("bare", bare)):
        fresh = settings_for(triton, tmp_path / f"fresh-{name}", compress_group_size=4)
        report = asyncio.run(import_jsonl(fresh, source))
        assert report.imported == len(before)
        after = _stored(fresh)
        if name == "vectors":
            assert after == before  # every column of every row, byte for byte
        else:  # re-embedded by the same model version: every other column identical
            for old, new in zip(before, after, strict=True):
                old, new = dict(old), dict(new)
                old_vector = np.frombuffer(old.pop("embedding"), dtype="<f4")
                new_vector = np.frombuffer(new.pop("embedding"), dtype="<f4")
                assert new == old
                if old["sources"] is None:  # an extractive summary's was its sources' centroid
                    np.testing.assert_allclose(new_vector, old_vector, atol=1e-5)
        with TestClient(create_app(fresh)) as client:
            for row in after:
                if row["context"] and row["speaker"] == "Ana":
                    _found_by_context(client, row)


def test_an_export_without_context_still_imports(settings: Settings, triton: TritonServer,
                                                 tmp_path: Path) -> None:
    with TestClient(create_app(settings)) as client:
        _ingest_conversations(client)
    before = _stored(settings)
    dump, old = tmp_path / "dump.jsonl", tmp_path / "old.jsonl"
    export_jsonl(settings, dump, vectors=True)
    header, *lines = [json.loads(text) for text in dump.read_text().splitlines()]
    for line in lines:
        del line["context"]  # as written before the export carried it
    old.write_text("".join(json.dumps(x) + "\n" for x in (header, *lines)))
    fresh = settings_for(triton, tmp_path / "fresh")
    assert asyncio.run(import_jsonl(fresh, old)).imported == len(before)
    after = _stored(fresh)
    assert all(row["context"] is None for row in after)
    assert after == [{**row, "context": None} for row in before]

    lines[0]["context"] = ["not", "text"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(x) + "\n" for x in (header, *lines)))
    other = settings_for(triton, tmp_path / "other")
    with pytest.raises(BackupError, match="context must be a string"):
        asyncio.run(import_jsonl(other, bad))
    assert _stored(other) == []


def test_import_embeds_again_vectors_of_another_version(settings: Settings,
                                                        triton: TritonServer,
                                                        tmp_path: Path) -> None:
    """The store takes vectors of the active version only: an exported line whose vector
    another version of the embedder made is embedded again on the way in, not refused."""
    with TestClient(create_app(settings)) as client:
        _fill(client, 12)
    dump, older = tmp_path / "dump.jsonl", tmp_path / "older.jsonl"
    export_jsonl(settings, dump, vectors=True)
    header, *lines = [json.loads(text) for text in dump.read_text().splitlines()]
    active = header["models"]["embedder"]
    for line in lines:  # as if an older version had made them
        line["embedding_model"] = "embedder:0"
    older.write_text("".join(json.dumps(x) + "\n" for x in (header, *lines)))
    fresh = settings_for(triton, tmp_path / "fresh")
    fresh.db_path.parent.mkdir(parents=True, exist_ok=True)

    async def with_active_version() -> None:
        store = SQLiteStore(fresh.db_path)
        await store.open()
        await store.set_active_version("embedder", active)
        await store.close()

    asyncio.run(with_active_version())
    report = asyncio.run(import_jsonl(fresh, older))
    assert (report.imported, report.embedded) == (len(lines), len(lines))
    with sqlite3.connect(fresh.db_path) as conn:
        labels = {row[0] for row in conn.execute("SELECT embedding_model FROM memories")}
    assert labels == {f"embedder:{active}"}
