"""Delete that erases (issue 19, finding 9): ``?erase=true`` on a memory or on a user leaves
no trace of the text in history, ingest events or the database files, and the store's files
are readable by their owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for, wait_for

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.settings import Settings
from gateway.triton import TritonServer

USER = "erin"
SECRET = "Erin's locker code is 4417-plover-quartz"
EDITED = "Erin's new locker code is 9902-heron-basalt"
OTHER = "Bob keeps the spare key under the blue pot"


@pytest.fixture
def gateway(triton: TritonServer, tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    settings = settings_for(triton, tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        yield client, settings


def _async_add(client: TestClient, user: str, text: str) -> tuple[str, str]:
    """(memory id, event id) of an ``async_mode`` add, once its event succeeded."""
    accepted = client.post("/v1/memories", json={"user_id": user, "text": text,
                                                 "async_mode": True})
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]
    event = wait_for(lambda: (e := client.get(f"/v1/events/{event_id}").json())["status"]
                     in ("SUCCEEDED", "FAILED") and e, f"event {event_id}")
    assert event["status"] == "SUCCEEDED"
    return event["results"][0]["id"], event_id


def _database_bytes(settings: Settings) -> bytes:
    """Every byte of the database and its WAL as they lie on disk."""
    path = settings.db_path
    return b"".join(Path(str(path) + suffix).read_bytes()
                    for suffix in ("", "-wal") if Path(str(path) + suffix).exists())


def _traces(settings: Settings, *texts: str) -> list[str]:
    data = _database_bytes(settings)
    return [t for t in texts if t.encode() in data]


def test_erasing_a_memory_removes_its_text_from_history_events_and_files(
        gateway: tuple[TestClient, Settings]) -> None:
    client, settings = gateway
    memory_id, event_id = _async_add(client, USER, SECRET)
    kept = client.post("/v1/memories", json={"user_id": USER, "text": OTHER}).json()
    assert client.patch(f"/v1/memories/{memory_id}", json={"text": EDITED}).status_code == 200
    history = client.get(f"/v1/memories/{memory_id}/history").json()["results"]
    assert [e["event"] for e in history] == ["ADD", "UPDATE"]

    erased = client.delete(f"/v1/memories/{memory_id}", params={"erase": "true"})
    assert erased.status_code == 204
    assert client.get(f"/v1/memories/{memory_id}").status_code == 404
    assert client.get(f"/v1/memories/{memory_id}/history").status_code == 404
    assert client.get(f"/v1/events/{event_id}").status_code == 404
    assert client.get(f"/v1/event/{event_id}/").status_code == 404  # the Mem0 route
    assert client.get(f"/v1/memories/{memory_id}/", ).status_code == 404
    assert _traces(settings, SECRET, EDITED) == []
    # the user's other memory is untouched, and erasing twice is a 404
    assert client.get(f"/v1/memories/{kept['id']}").json()["text"] == OTHER
    again = client.delete(f"/v1/memories/{memory_id}", params={"erase": "true"})
    assert again.status_code == 404


def test_erasing_an_already_deleted_memory_removes_its_history(
        gateway: tuple[TestClient, Settings]) -> None:
    client, settings = gateway
    memory_id, _ = _async_add(client, USER, SECRET)
    assert client.delete(f"/v1/memories/{memory_id}").status_code == 204
    events = client.get(f"/v1/memories/{memory_id}/history").json()["results"]
    assert [e["event"] for e in events] == ["ADD", "DELETE"]  # a plain delete keeps history
    assert client.delete(f"/v1/memories/{memory_id}", params={"erase": "true"}).status_code == 204
    assert client.get(f"/v1/memories/{memory_id}/history").status_code == 404
    assert _traces(settings, SECRET) == []


def test_erasing_a_user_removes_every_trace_and_keeps_other_users(
        gateway: tuple[TestClient, Settings]) -> None:
    client, settings = gateway
    first, event_id = _async_add(client, USER, SECRET)
    second = client.post("/v1/memories", json={"user_id": USER, "text": EDITED}).json()["id"]
    assert client.delete(f"/v1/memories/{first}").status_code == 204  # deleted before
    bob = client.post("/v1/memories", json={"user_id": "bob", "text": OTHER}).json()["id"]

    wiped = client.delete("/v1/memories", params={"user_id": USER, "erase": "true"})
    assert wiped.status_code == 200 and wiped.json() == {"deleted": 1}
    for memory_id in (first, second):
        assert client.get(f"/v1/memories/{memory_id}/history").status_code == 404
    assert client.get(f"/v1/events/{event_id}").status_code == 404
    assert client.get("/v1/memories", params={"user_id": USER}).json()["results"] == []
    assert _traces(settings, SECRET, EDITED) == []
    assert client.get(f"/v1/memories/{bob}").json()["text"] == OTHER
    assert len(client.get(f"/v1/memories/{bob}/history").json()["results"]) == 1


def test_mem0_delete_can_erase(gateway: tuple[TestClient, Settings]) -> None:
    client, settings = gateway
    memory_id, _ = _async_add(client, USER, SECRET)
    erased = client.delete(f"/v1/memories/{memory_id}/", params={"erase": "true"})
    assert erased.status_code == 200, erased.text
    assert client.get(f"/v1/memories/{memory_id}/history/").status_code == 404
    assert _traces(settings, SECRET) == []


def test_erase_of_another_tenants_memory_is_a_404(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", auth="required")
    with KeyStore(settings.keys_path) as store:
        keys = {t: {"Authorization": f"Bearer {store.create(t, KeyScope.WRITE)[0].secret_key}"}
                for t in ("a", "b")}
    with TestClient(create_app(settings)) as client:
        made = client.post("/v1/memories", json={"user_id": USER, "text": SECRET},
                           headers=keys["a"]).json()["id"]
        assert client.delete(f"/v1/memories/{made}", headers=keys["a"]).status_code == 204
        for path in (f"/v1/memories/{made}", f"/v1/memories/{made}/"):
            response = client.delete(path, params={"erase": "true"}, headers=keys["b"])
            assert response.status_code == 404
        wiped = client.delete("/v1/memories", params={"user_id": USER, "erase": "true"},
                              headers=keys["b"])
        assert wiped.json() == {"deleted": 0}
        history = client.get(f"/v1/memories/{made}/history", headers=keys["a"])
        assert history.status_code == 200  # a's deleted memory's history is still a's


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_wal_and_key_files_are_private(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", auth="required")
    previous = os.umask(0o022)  # a usual umask: files would be 0644
    try:
        with KeyStore(settings.keys_path) as store:
            key = store.create("a", KeyScope.WRITE)[0].secret_key
        with TestClient(create_app(settings)) as client:
            client.post("/v1/memories", json={"user_id": USER, "text": SECRET},
                        headers={"Authorization": f"Bearer {key}"})
            files = [p for p in settings.data_dir.iterdir()
                     if p.name.startswith((settings.db_file, settings.keys_file))
                     and not p.name.endswith(".in-use")]
            assert {settings.db_file, settings.db_file + "-wal", settings.db_file + "-shm",
                    settings.keys_file} <= {p.name for p in files}
            assert {p.name: oct(_mode(p)) for p in files} == {p.name: oct(0o600) for p in files}
    finally:
        os.umask(previous)
