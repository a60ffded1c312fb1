"""Image memories through the gateway, against a real Triton serving the embedder and the
tiny CLIP (trained on colours, exported by the real CLI): add, search by text and by image in
one list with text memories, get the picture, delete, tenancy, and hostile images refused with
nothing stored."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from support import opened, run, settings_for
from support.jobs import wait_done
from support.tiny_clip import COLOURS, caption, picture

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.backup.jsonl import export_jsonl, import_jsonl
from gateway.store.sqlite.files import copy_online
from gateway.triton import TritonServer


@pytest.fixture
def client(clip_triton: TritonServer, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(clip_triton, tmp_path / "data"))) as test_client:
        yield test_client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def add_image(client: TestClient, colour: str, *, user: str = "alice", text: str | None = None,
              seed: int = 0, status: int = 201, **fields: object) -> dict:
    body = {"user_id": user, "image": b64(picture(colour, seed=seed)), **fields}
    if text is not None:
        body["text"] = text
    response = client.post("/v1/memories", json=body)
    assert response.status_code == status, response.text
    return response.json()


def search(client: TestClient, **body: object) -> list[dict]:
    response = client.post("/v1/memories/search", json={"user_id": "alice", **body})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def count(client: TestClient, user: str = "alice") -> int:
    return len(client.get("/v1/memories", params={"user_id": user}).json()["results"])


def test_an_image_memory_round_trips_without_its_metadata(client: TestClient) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # camera make
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    raw = io.BytesIO()
    Image.new("RGB", (40, 20), COLOURS["red"]).save(raw, "JPEG", exif=exif.tobytes())
    added = client.post("/v1/memories", json={"user_id": "alice", "image": b64(raw.getvalue()),
                                              "text": "the red sign", "metadata": {"k": 1}})
    assert added.status_code == 201, added.text
    memory = added.json()
    assert memory["modality"] == "image" and memory["text"] == "the red sign"
    assert memory["event"] == "ADD" and memory["metadata"] == {"k": 1}
    image = memory["image"]
    assert (image["mime"], image["width"], image["height"]) == ("image/jpeg", 20, 40)  # upright
    got = client.get(f"/v1/memories/{memory['id']}")
    assert got.status_code == 200 and got.json()["image"] == image
    picture_response = client.get(image["url"])
    assert picture_response.status_code == 200
    assert picture_response.headers["content-type"] == "image/jpeg"
    assert len(picture_response.content) == image["bytes"]
    stored = Image.open(io.BytesIO(picture_response.content))
    assert stored.size == (20, 40) and not stored.getexif()
    assert b"SecretCam" not in picture_response.content
    text = client.post("/v1/memories", json={"user_id": "alice", "text": "plain words"}).json()
    assert text["modality"] == "text" and text["image"] is None
    assert client.get(f"/v1/memories/{text['id']}/image").status_code == 404


def test_a_text_query_finds_images_and_texts_in_one_list(client: TestClient) -> None:
    ids = {c: add_image(client, c, seed=i)["id"] for i, c in enumerate(COLOURS)}
    words = client.post("/v1/memories", json={"user_id": "alice",
                                              "text": "the red car is parked outside"}).json()
    results = search(client, query=caption("red", 1), limit=20)
    assert {r["modality"] for r in results} == {"image", "text"}
    images = [r for r in results if r["modality"] == "image"]
    assert images[0]["id"] == ids["red"]
    assert words["id"] in [r["id"] for r in results]
    only_images = search(client, query=caption("blue", 0), modality="image", limit=3)
    assert [r["modality"] for r in only_images] == ["image"] * 3
    assert only_images[0]["id"] == ids["blue"]
    only_text = search(client, query="red", modality="text")
    assert [r["id"] for r in only_text] == [words["id"]]


def test_text_to_image_recall_at_one_on_the_labelled_colours(client: TestClient) -> None:
    """The tiny model's labelled set: every colour's caption finds its own picture first."""
    ids = {c: add_image(client, c, seed=100 + i)["id"] for i, c in enumerate(COLOURS)}
    hits = 0
    for colour in COLOURS:
        top = search(client, query=caption(colour, 3), modality="image", limit=1)
        hits += top[0]["id"] == ids[colour]
    assert hits == len(COLOURS)


def test_search_by_image_finds_the_same_colour_first(client: TestClient) -> None:
    ids = {c: add_image(client, c, seed=i)["id"] for i, c in enumerate(COLOURS)}
    client.post("/v1/memories", json={"user_id": "alice", "text": "green tea"})
    for colour in ("green", "purple"):
        query = b64(picture(colour, seed=999, fmt="WEBP"))
        results = search(client, image=query, limit=3)
        assert results[0]["id"] == ids[colour]
        assert all(r["modality"] == "image" for r in results)
        assert results[0]["similarity"] > results[1]["similarity"]
        bounded = search(client, image=query, limit=8,
                         threshold=results[1]["similarity"] + 1e-6)
        assert [r["id"] for r in bounded] == [ids[colour]]
    for refused in ({"rerank": True}, {"mode": "keyword"}, {"modality": "text"},
                    {"query": "red"}):
        body = {"user_id": "alice", "image": b64(picture("red")), **refused}
        assert client.post("/v1/memories/search", json=body).status_code == 422, refused


def test_a_caption_is_searchable_by_keyword_and_a_deleted_image_is_gone(
        client: TestClient) -> None:
    memory = add_image(client, "yellow", text="invoice from the plumber")
    assert [r["id"] for r in search(client, query="plumber", mode="keyword")] == [memory["id"]]
    assert client.delete(f"/v1/memories/{memory['id']}").status_code == 204
    assert client.get(memory["image"]["url"]).status_code == 404
    assert search(client, query="plumber") == []
    assert search(client, image=b64(picture("yellow")), limit=3) == []


def test_a_batch_of_images_is_stored_all_or_none(client: TestClient) -> None:
    items = [{"user_id": "alice", "image": b64(picture(c)), "text": f"batch {c}"}
             for c in ("red", "green")]
    response = client.post("/v1/memories/batch", json={"items": items})
    assert response.status_code == 201, response.text
    assert [r["item"] for r in response.json()["results"]] == [0, 1]
    bad = [*items, {"user_id": "alice", "image": b64(b"not an image at all")}]
    refused = client.post("/v1/memories/batch", json={"items": bad})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "items", 2, "image"]
    mixed = [*items, {"user_id": "alice", "text": "a text among images"}]
    assert client.post("/v1/memories/batch", json={"items": mixed}).status_code == 422
    assert count(client) == 2


def _png(width: int, height: int, mode: str = "1") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, "PNG")
    return out.getvalue()


def _gif() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, "GIF")
    return out.getvalue()


@pytest.mark.parametrize(("name", "image", "status"), [
    ("not an image", b64(b"hello, I am text"), 422),
    ("not base64", "%%%not-base64%%%", 422),
    ("wrong type (GIF)", b64(_gif()), 422),
    ("truncated PNG", b64(picture("red")[:80]), 422),
    ("over the pixel limit", b64(_png(5000, 4000)), 413),
    ("decompression bomb", b64(_png(30000, 30000)), 413),
])
def test_hostile_images_are_refused_and_nothing_is_stored(
        client: TestClient, name: str, image: str, status: int) -> None:
    response = client.post("/v1/memories", json={"user_id": "alice", "image": image})
    assert response.status_code == status, (name, response.text)
    assert "detail" in response.json()
    found = client.post("/v1/memories/search", json={"user_id": "alice", "image": image})
    assert found.status_code == status, (name, found.text)
    assert count(client) == 0


def test_an_image_over_the_byte_limit_is_413(clip_triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(clip_triton, tmp_path / "data", image_max_bytes=2048)
    with TestClient(create_app(settings)) as small:
        big = picture("red", size=200)  # noisy pixels: far over 2 KiB as PNG
        assert len(big) > 2048
        response = small.post("/v1/memories", json={"user_id": "alice", "image": b64(big)})
        assert response.status_code == 413, response.text
        assert count(small) == 0


@pytest.mark.parametrize("body", [
    {"image": "aGk=", "messages": [{"role": "user", "content": "hi"}]},
    {"image": "aGk=", "embedding": [0.1, 0.2]},
    {"image": "aGk=", "infer": True},
    {"image": "aGk=", "async_mode": True},
])
def test_an_image_add_refuses_options_it_cannot_honour(client: TestClient,
                                                       body: dict) -> None:
    response = client.post("/v1/memories", json={"user_id": "alice", **body})
    assert response.status_code == 422, response.text


def test_another_tenant_cannot_see_or_find_an_image(clip_triton: TritonServer,
                                                    tmp_path: Path) -> None:
    settings = settings_for(clip_triton, tmp_path / "data", auth="required")
    with KeyStore(settings.keys_path) as store:
        keys = {t: store.create(t, KeyScope.WRITE)[0].secret_key for t in ("a", "b")}
        reader = store.create("b", KeyScope.READ)[0].secret_key
    auth = {t: {"Authorization": f"Bearer {k}"} for t, k in keys.items()}
    with TestClient(create_app(settings)) as client:
        added = client.post("/v1/memories", headers=auth["a"],
                            json={"user_id": "alice", "image": b64(picture("red"))})
        assert added.status_code == 201, added.text
        memory_id = added.json()["id"]
        for path in (f"/v1/memories/{memory_id}", f"/v1/memories/{memory_id}/image"):
            assert client.get(path, headers=auth["b"]).status_code == 404
            assert client.get(path, headers=auth["a"]).status_code == 200
        found = client.post("/v1/memories/search", headers=auth["b"],
                            json={"user_id": "alice", "image": b64(picture("red"))})
        assert found.status_code == 200 and found.json()["results"] == []
        read_only = client.post("/v1/memories", headers={"Authorization": f"Bearer {reader}"},
                                json={"user_id": "alice", "image": b64(picture("red"))})
        assert read_only.status_code == 403


def test_without_a_clip_model_image_routes_say_how_to_enable_them(
        triton: TritonServer, tmp_path: Path) -> None:
    """The session's Triton serves the embedder only."""
    with TestClient(create_app(settings_for(triton, tmp_path / "data"))) as plain:
        response = plain.post("/v1/memories", json={"user_id": "alice",
                                                    "image": b64(picture("red"))})
        assert response.status_code == 409
        assert "python -m export clip" in response.json()["detail"]
        by_image = plain.post("/v1/memories/search", json={"user_id": "alice",
                                                           "image": b64(picture("red"))})
        assert by_image.status_code == 409
        assert plain.post("/v1/memories", json={"user_id": "alice",
                                                "text": "still fine"}).status_code == 201
        assert plain.post("/v1/memories/search", json={"user_id": "alice",
                                                       "query": "fine"}).status_code == 200
        assert count(plain) == 1


@pytest.mark.parametrize("vectors", [True, False])
def test_export_import_and_backup_carry_images(clip_triton: TritonServer, tmp_path: Path,
                                               vectors: bool) -> None:
    source = settings_for(clip_triton, tmp_path / "source")
    with TestClient(create_app(source)) as client:
        red = add_image(client, "red", text="the red kite")
        blue = add_image(client, "blue")
        note = client.post("/v1/memories", json={"user_id": "alice", "text": "kites"}).json()
        original = client.get(red["image"]["url"]).content
    dump = tmp_path / "export.jsonl"
    assert export_jsonl(source, dump, vectors=vectors) == 3
    assert copy_online(source.db_path, tmp_path / "backup.sqlite3") == "ok"
    backup = run(opened(tmp_path / "backup.sqlite3"))
    try:
        assert run(backup.image(red["id"])).data == original
    finally:
        run(backup.close())
    target = settings_for(clip_triton, tmp_path / "target")
    report = asyncio.run(import_jsonl(target, dump))
    assert report.imported == 3 and report.embedded == (0 if vectors else 3)
    with TestClient(create_app(target)) as client:
        got = client.get(f"/v1/memories/{red['id']}").json()
        assert got["modality"] == "image" and got["image"] == red["image"]
        assert client.get(red["image"]["url"]).content == original
        assert client.get(f"/v1/memories/{note['id']}").json()["modality"] == "text"
        assert search(client, image=b64(picture("blue", seed=5)), limit=1)[0]["id"] == blue["id"]
        assert red["id"] in [r["id"] for r in search(client, query="kite", mode="keyword")]
        erased = client.delete(f"/v1/memories/{blue['id']}", params={"erase": "true"})
        assert erased.status_code == 204
        assert client.get(blue["image"]["url"]).status_code == 404


def test_consolidation_jobs_leave_images_alone(clip_triton: TritonServer,
                                               tmp_path: Path) -> None:
    """Captionless pictures share one (empty) text: merge must not take them for duplicates,
    and compress must not fold a picture into a text summary."""
    settings = settings_for(clip_triton, tmp_path / "data", compress_group_size=4)
    old = {"occurred_at": "2020-01-01T00:00:00Z", "priority": 1}
    with TestClient(create_app(settings)) as client:
        images = [add_image(client, "red", seed=i, **old)["id"] for i in range(4)]
        items = [{"user_id": "alice", "text": f"old note number {i} about the garden", **old}
                 for i in range(4)]
        client.post("/v1/memories/batch", json={"items": items, "dedup": False})
        for kind in ("merge", "compress"):
            started = client.post("/v1/jobs", json={"kind": kind, "user_id": "alice"})
            assert started.status_code == 202, started.text
            assert wait_done(client, started.json()["id"])["status"] == "done"
        for memory_id in images:
            got = client.get(f"/v1/memories/{memory_id}").json()
            assert got["modality"] == "image" and got["archived_at"] is None
        assert len(search(client, image=b64(picture("red")), limit=10)) == 4


def test_a_picture_without_caption_is_never_a_text_space_hit(client: TestClient) -> None:
    """A vector query searches the text space alone: every stored vector is a candidate, yet
    the captionless pictures (their text is empty) are left out, the captioned one is not."""
    for colour in ("red", "blue"):
        add_image(client, colour)
    captioned = add_image(client, "green", text="green meadow")
    note = client.post("/v1/memories", json={"user_id": "alice", "text": "a note"}).json()
    vector = [1.0 / 384 ** 0.5] * 384
    found = search(client, embedding=vector, limit=10)
    assert sorted(r["id"] for r in found) == sorted([captioned["id"], note["id"]])


def test_erasing_an_image_leaves_no_trace_of_the_picture_in_the_files(
        clip_triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(clip_triton, tmp_path / "data")

    def on_disk() -> bytes:
        return b"".join(Path(str(settings.db_path) + s).read_bytes() for s in ("", "-wal")
                        if Path(str(settings.db_path) + s).exists())

    with TestClient(create_app(settings)) as client:
        memory = add_image(client, "orange", seed=42, text="the orange locker")
        stored = client.get(memory["image"]["url"]).content
        pieces = [stored[100:164], stored[len(stored) // 2:len(stored) // 2 + 64],
                  stored[-200:-136]]
        assert all(piece in on_disk() for piece in pieces)  # it is there to be erased
        erased = client.delete(f"/v1/memories/{memory['id']}", params={"erase": "true"})
        assert erased.status_code == 204
        assert [piece in on_disk() for piece in pieces] == [False, False, False]
