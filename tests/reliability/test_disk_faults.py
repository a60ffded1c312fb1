"""A full disk and a read-only disk under the store: writes answer 507 / 503 with a detail and
Retry-After, reads keep working, nothing is corrupted, and writes work again once the disk does.

The disks are real: a size-limited tmpfs, and an ext4 image on a loop device that the kernel
takes read-only (errors=remount-ro) after an injected filesystem error. Mounting needs root,
which the CI machine has.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import settings_for

from gateway.app import create_app
from gateway.triton import TritonServer

DISK_MB = 8
WRITE_ATTEMPTS = 400


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Write a filler file until the disk reports ENOSPC."""
    filler = disk / "filler"
    chunk = b"\0" * (64 * 1024)
    # suppress outermost: closing the file flushes what a short write left in its buffer,
    # which fails with ENOSPC again
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(chunk)
            handle.flush()
    with contextlib.suppress(OSError), (disk / "filler2").open("wb") as handle:
        while True:  # the last few blocks
            handle.write(b"\0" * 512)
            handle.flush()
    probe = disk / "probe"
    with pytest.raises(OSError) as exc, probe.open("wb") as handle:
        handle.write(b"x" * 4096)
        handle.flush()
        os.fsync(handle.fileno())
    assert exc.value.errno == errno.ENOSPC
    probe.unlink(missing_ok=True)
    return filler


def _consistent(db: Path) -> tuple[int, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ids = {r[0] for r in conn.execute("SELECT id FROM memories")}
        lexical = {r[0] for r in conn.execute("SELECT memory_id FROM lexical_docs")}
        added = {r[0] for r in conn.execute("SELECT memory_id FROM history WHERE event='ADD'")}
        assert ids == lexical and ids <= added
        return len(ids), conn.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        conn.close()


def _write(client: TestClient, n: int) -> tuple[int, dict]:
    response = client.post("/v1/memories", json={
        "user_id": "u", "text": f"note {n} " + "lorem ipsum " * 300, "metadata": {"n": n}})
    return response.status_code, response.json() | {"retry": response.headers.get(
        "Retry-After")}


def test_full_disk_refuses_writes_keeps_reads_and_recovers(triton: TritonServer,
                                                          small_disk: Path) -> None:
    settings = settings_for(triton, small_disk / "data")
    with TestClient(create_app(settings)) as client:
        acked = {}
        for n in range(5):
            status, body = _write(client, n)
            assert status == 201, body
            acked[body["id"]] = body["text"]
        filler = _fill(small_disk)
        refused = None
        for n in range(5, 5 + WRITE_ATTEMPTS):  # WAL pages already on disk may take a few
            status, body = _write(client, n)
            assert status in (201, 507), body
            if status == 507:
                refused = body
                break
            acked[body["id"]] = body["text"]
        assert refused is not None, "the full disk never refused a write"
        assert "storage full" in refused["detail"] and int(refused["retry"]) > 0
        batch = client.post("/v1/memories/batch", json={"items": [
            {"user_id": "u", "text": "batch item " * 200 + str(i), "embedding": [0.05] * 384}
            for i in range(20)]})
        assert batch.status_code == 507, batch.text
        # reads keep working
        page = client.get("/v1/memories", params={"user_id": "u", "limit": 1000})
        assert page.status_code == 200
        assert {m["id"]: m["text"] for m in page.json()["results"]} == acked
        found = client.post("/v1/memories/search", json={"user_id": "u", "query": "note 3"})
        assert found.status_code == 200 and found.json()["results"]
        assert client.get("/healthz").status_code == 200
        count, check = _consistent(settings.db_path)
        assert (count, check) == (len(acked), "ok")
        # space returns: writes work again
        filler.unlink()
        (small_disk / "filler2").unlink(missing_ok=True)
        status, body = _write(client, 9999)
        assert status == 201, body
        assert client.get(f"/v1/memories/{body['id']}", params={"user_id": "u"}
                          ).status_code == 200
    assert _consistent(settings.db_path) == (len(acked) + 1, "ok")


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A 32 MB ext4 on a loop device, mounted errors=remount-ro: (mount point, image)."""
    image, mount = tmp_path / "disk.img", tmp_path / "ext4"
    mount.mkdir()
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed here (e2fsprogs)")
    subprocess.run(["truncate", "-s", "32M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    made = subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a loop device here (needs root): {made.stderr.strip()}")
    try:
        yield mount, image
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fail_filesystem(mount: Path) -> None:
    """Make the kernel take the disk read-only, as it does after an I/O error."""
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mount)], check=True,
                            capture_output=True, text=True).stdout.strip()
    trigger = Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error")
    if not trigger.exists():
        pytest.skip(f"this kernel cannot inject an ext4 error ({trigger} is missing)")
    trigger.write_text("test\n")
    with pytest.raises(OSError) as exc:
        (mount / "probe").write_bytes(b"x")
    assert exc.value.errno == errno.EROFS


def test_read_only_disk_refuses_writes_keeps_reads_and_recovers(
        triton: TritonServer, ext4_disk: tuple[Path, Path]) -> None:
    mount, image = ext4_disk
    settings = settings_for(triton, mount / "data")
    with TestClient(create_app(settings)) as client:
        status, first = _write(client, 1)
        assert status == 201
        _fail_filesystem(mount)
        status, body = _write(client, 2)
        assert status == 503, body
        assert "storage unavailable" in body["detail"] and int(body["retry"]) > 0
        patch = client.patch(f"/v1/memories/{first['id']}", params={"user_id": "u"},
                             json={"text": "changed"})
        assert patch.status_code == 503, patch.text
        assert client.delete(f"/v1/memories/{first['id']}", params={"user_id": "u"}
                             ).status_code == 503
        # reads keep working
        page = client.get("/v1/memories", params={"user_id": "u"})
        assert page.status_code == 200
        assert [m["text"] for m in page.json()["results"]] == [first["text"]]
        assert client.post("/v1/memories/search", json={"user_id": "u", "query": "note"}
                           ).json()["results"][0]["id"] == first["id"]
    # the operator's recovery: unmount, check the filesystem, mount, start the gateway
    subprocess.run(["umount", str(mount)], check=True)
    subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True, check=False)
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(image), str(mount)],
                   check=True)
    with TestClient(create_app(settings)) as client:
        status, body = _write(client, 3)
        assert status == 201, body
        texts = [m["text"] for m in client.get("/v1/memories", params={"user_id": "u"}
                                               ).json()["results"]]
        assert texts == [first["text"], body["text"]]
    assert _consistent(settings.db_path) == (2, "ok")
