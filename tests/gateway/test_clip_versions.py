"""CLIP version swaps against a real Triton: two tiny CLIPs trained from different seeds (two
different spaces), exported by the real CLI as versions 1 and 2 of both towers.

Version 2 is put into the repository after the gateway has stored pictures under version 1,
as an operator's new export would be. The test holds the image-write lock that the switch
takes, so it can look at the gateway between "every picture re-embedded" and "switched".
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from support import make_triton, opened, run, settings_for, wait_for
from support.servers import serving
from support.tiny_clip import COLOURS, caption, picture

from export.cli import main as export_main
from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.domain.model import StoredImage
from gateway.triton import TritonServer
from loadtest.repository import copy_latest_as_v1

MIGRATION_TIMEOUT_S = 180.0  # re-embedding the pictures on a busy 2-core machine
TOWERS = ("clip_image", "clip_text")


@pytest.fixture(scope="module")
def clip_repo_v2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny CLIP (another seed: another space), exported by the real CLI."""
    from support.tiny_clip import build

    source = build(tmp_path_factory.mktemp("tiny-clip-2"), seed=1)
    repo = tmp_path_factory.mktemp("clip-export-2") / "model_repository"
    assert export_main(["clip", "--model", str(source), "--repository", str(repo)]) == 0
    return repo


@pytest.fixture
def clip_v1(clip_repo: Path, tmp_path: Path) -> Iterator[TritonServer]:
    """Triton serving the embedder and CLIP version 1 (its own repository: tests add 2)."""
    repo = copy_latest_as_v1(tmp_path, "embedder")
    for tower in TOWERS:
        copy_latest_as_v1(tmp_path, tower, source=clip_repo)
    server = make_triton(tmp_path, repository=repo, models=("embedder", *TOWERS))
    with server:
        yield server


def export_version_2(server: TritonServer, clip_repo_v2: Path) -> None:
    for tower in TOWERS:
        shutil.copytree(clip_repo_v2 / tower / "1", Path(server.model_repository) / tower / "2")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def add_image(client: TestClient, colour: str, seed: int = 0) -> str:
    response = client.post("/v1/memories", json={"user_id": "alice",
                                                  "image": b64(picture(colour, seed=seed))})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def search(client: TestClient, **body: object) -> list[dict[str, Any]]:
    response = client.post("/v1/memories/search", json={"user_id": "alice", **body})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def by_image(client: TestClient, colour: str) -> list[tuple[str, float]]:
    found = search(client, image=b64(picture(colour, seed=999, fmt="WEBP")), limit=3)
    return [(r["id"], r["similarity"]) for r in found]


def by_text(client: TestClient, colour: str) -> list[str]:
    return [r["id"] for r in search(client, query=caption(colour, 1), modality="image",
                                    limit=3)]


def clip_view(client: TestClient) -> dict[str, Any]:
    models = client.get("/v1/admin/models")
    assert models.status_code == 200, models.text
    return dict(models.json()["clip"])


def migration(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/v1/admin/models/clip/migration").json())


def stored(client: TestClient, memory_id: str) -> StoredImage:
    """A picture as the gateway's store holds it."""
    store = client.app.state.gateway.store  # type: ignore[attr-defined]
    assert client.portal is not None
    image = client.portal.call(store.image, memory_id)
    assert image is not None
    return image


def labels(client: TestClient, ids: list[str]) -> set[str]:
    """The space each picture's stored vector records."""
    return {stored(client, memory_id).model for memory_id in ids}


class SwitchHeld:
    """Hold the image-write lock the CLIP switch takes: the migration re-embeds everything,
    then waits in ``switching`` until released."""

    def __init__(self, client: TestClient) -> None:
        assert client.portal is not None
        self.portal = client.portal
        self.lock = client.app.state.gateway.images.clip.switching  # type: ignore[attr-defined]

    def __enter__(self) -> SwitchHeld:
        self.portal.call(self.lock.acquire)
        return self

    def __exit__(self, *exc: object) -> None:
        self.portal.call(self.lock.release)


def test_activating_clip_2_re_embeds_every_picture_then_switches(
        clip_v1: TritonServer, clip_repo_v2: Path, tmp_path: Path) -> None:
    settings = settings_for(clip_v1, tmp_path / "data", clip_reembed_batch=3)
    with TestClient(create_app(settings)) as client:
        ids = {c: add_image(client, c, seed=i) for i, c in enumerate(COLOURS)}
        client.post("/v1/memories", json={"user_id": "alice", "text": "a blue note"})
        view = clip_view(client)
        assert (view["active"], view["target"], view["served"], view["repository"]) == (
            "1", None, ["1"], ["1"])
        green_before, blue_before = by_image(client, "green"), by_text(client, "blue")
        vectors_before = {i: stored(client, i).vector for i in ids.values()}
        assert green_before[0][0] == ids["green"] and blue_before[0] == ids["blue"]

        export_version_2(clip_v1, clip_repo_v2)
        assert clip_view(client)["repository"] == ["1", "2"]
        with SwitchHeld(client):
            started = client.post("/v1/admin/models/clip/activate", json={"version": "2"})
            assert started.status_code == 202, started.text
            assert (started.json()["target"], started.json()["active"]) == ("2", "1")
            held = wait_for(lambda: (s := migration(client))["state"] == "switching" and s,
                            "every picture to be re-embedded", MIGRATION_TIMEOUT_S)
            assert held["done"] == held["total"] == len(COLOURS)
            view = clip_view(client)
            assert (view["active"], view["target"], view["served"]) == ("1", "2", ["1", "2"])
            # Until the switch, searches answer from version 1 alone: the very same hits.
            during = by_image(client, "green")
            assert [i for i, _ in during] == [i for i, _ in green_before]
            assert [c for _, c in during] == pytest.approx([c for _, c in green_before])
            assert by_text(client, "blue") == blue_before
            assert labels(client, list(ids.values())) == {"clip:1"}
            again = client.post("/v1/admin/models/clip/activate", json={"version": "2"})
            assert again.status_code == 409, again.text
        done = wait_for(lambda: (s := migration(client))["state"] == "done" and s,
                        "the switch to version 2", MIGRATION_TIMEOUT_S)
        assert (done["active"], done["target"], done["done"]) == ("2", "2", len(COLOURS))
        view = clip_view(client)
        assert (view["active"], view["target"], view["served"]) == ("2", None, ["2"])
        assert labels(client, list(ids.values())) == {"clip:2"}
        green_after = by_image(client, "green")
        assert green_after[0][0] == ids["green"]
        for memory_id, vector in vectors_before.items():  # another space: other vectors
            assert not np.allclose(stored(client, memory_id).vector, vector, atol=1e-3)
        assert by_text(client, "blue")[0] == ids["blue"]
        late = add_image(client, "purple", seed=50)
        assert labels(client, [late]) == {"clip:2"}
        assert by_image(client, "purple")[0][0] == late


def test_bad_requests_and_abandon_leave_version_1_active(
        clip_v1: TritonServer, clip_repo_v2: Path, tmp_path: Path) -> None:
    settings = settings_for(clip_v1, tmp_path / "data", auth="required")
    with KeyStore(settings.keys_path) as keys:
        operator = keys.create("ops", KeyScope.OPERATOR)[0].secret_key
        admin = keys.create("acme", KeyScope.ADMIN)[0].secret_key
    with TestClient(create_app(settings),
                    headers={"Authorization": f"Bearer {operator}"}) as client:
        ids = [add_image(client, c) for c in ("red", "blue", "green")]
        export_version_2(clip_v1, clip_repo_v2)
        tenant = client.post("/v1/admin/models/clip/activate", json={"version": "2"},
                             headers={"Authorization": f"Bearer {admin}"})
        assert tenant.status_code == 403, tenant.text  # model versions are the operator's
        for body, code in [({"version": "7"}, 404), ({"version": "1"}, 409),
                           ({"version": "x"}, 422), ({}, 422)]:
            response = client.post("/v1/admin/models/clip/activate", json=body)
            assert response.status_code == code, (body, response.text)
            assert "detail" in response.json()
        assert client.post("/v1/admin/models/clip/abandon").status_code == 409
        view = clip_view(client)
        assert (view["active"], view["target"], view["served"]) == ("1", None, ["1"])
        with SwitchHeld(client):
            assert client.post("/v1/admin/models/clip/activate",
                               json={"version": "2"}).status_code == 202
            wait_for(lambda: migration(client)["state"] == "switching",
                     "every picture to be re-embedded", MIGRATION_TIMEOUT_S)
            rolled = client.post("/v1/admin/models/clip/abandon")
            assert rolled.status_code == 200, rolled.text
        view = clip_view(client)
        assert (view["active"], view["target"], view["served"]) == ("1", None, ["1"])
        assert labels(client, ids) == {"clip:1"}
        assert by_image(client, "blue")[0][0] == ids[1]


def test_an_interrupted_clip_migration_resumes_after_a_restart(
        clip_v1: TritonServer, clip_repo_v2: Path, tmp_path: Path) -> None:
    settings = settings_for(clip_v1, tmp_path / "data", clip_reembed_batch=2)
    with TestClient(create_app(settings)) as client:
        ids = {c: add_image(client, c, seed=i) for i, c in enumerate(COLOURS)}
        export_version_2(clip_v1, clip_repo_v2)
        SwitchHeld(client).__enter__()  # never released: the gateway stops before the switch
        assert client.post("/v1/admin/models/clip/activate",
                           json={"version": "2"}).status_code == 202
        wait_for(lambda: migration(client)["state"] == "switching",
                 "every picture to be re-embedded", MIGRATION_TIMEOUT_S)
    store = run(opened(settings.db_path))  # the store kept the migration and its cursor
    try:
        state = run(store.model_state("clip"))
        assert state is not None and (state.active, state.target) == ("1", "2")
        assert state.cursor == max(ids.values())
        assert run(store.image_migration_progress()) == (len(COLOURS), len(COLOURS))
    finally:
        run(store.close())
    with TestClient(create_app(settings)) as client:
        late = add_image(client, "purple", seed=77)  # before or after the switch: either way
        wait_for(lambda: migration(client)["state"] == "done",
                 "the resumed migration to switch", MIGRATION_TIMEOUT_S)
        view = clip_view(client)
        assert (view["active"], view["target"], view["served"]) == ("2", None, ["2"])
        assert labels(client, [*ids.values(), late]) == {"clip:2"}
        assert by_image(client, "orange")[0][0] == ids["orange"]


def test_activating_clip_without_a_clip_model_says_how_to_export_one(
        triton: TritonServer, tmp_path: Path) -> None:
    """The session's Triton serves the embedder only."""
    with TestClient(create_app(settings_for(triton, tmp_path / "data"))) as client:
        view = clip_view(client)
        assert (view["active"], view["served"], view["repository"]) == (None, [], [])
        response = client.post("/v1/admin/models/clip/activate", json={"version": "1"})
        assert response.status_code == 409
        assert "python -m export clip" in response.json()["detail"]


def test_operator_cli_lists_and_activates_clip(clip_v1: TritonServer, clip_repo_v2: Path,
                                               tmp_path: Path) -> None:
    settings = settings_for(clip_v1, tmp_path / "data", clip_reembed_batch=4)
    with serving(settings) as url:
        added = httpx.post(f"{url}/v1/memories", timeout=30, json={
            "user_id": "alice", "image": b64(picture("red"))})
        assert added.status_code == 201, added.text
        export_version_2(clip_v1, clip_repo_v2)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "gateway.models", *args, "--url", url],
                                  capture_output=True, text=True, timeout=300, check=False)

        listed = cli("list", "--json")
        assert listed.returncode == 0, listed.stderr
        clip = json.loads(listed.stdout)["clip"]
        assert (clip["active"], clip["served"], clip["repository"]) == ("1", ["1"], ["1", "2"])
        activated = cli("activate", "clip", "2")
        assert activated.returncode == 0, activated.stderr
        assert "clip:2 is active" in activated.stderr
        again = cli("activate", "clip", "2")
        assert again.returncode == 1 and "already active" in again.stderr
        assert cli("abandon", "--model", "clip").returncode == 1  # nothing to abandon
        assert json.loads(cli("list", "--json").stdout)["clip"]["served"] == ["2"]
