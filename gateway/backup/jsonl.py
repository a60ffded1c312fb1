"""Memories as JSON Lines: a portable export, and an import that keeps ids and times.

``export`` writes one header line (format, schema version, the active model versions) and then
one line per memory: every column of its row (``context``, a message's neighbours that keyword
search reads, included), and with ``--vectors`` its embedding with the model label that made it.
``import`` keeps ids and times; lines without a vector are embedded by the Triton server the
settings point at; lines without ``context`` (files from before it was exported) have none.
An image memory's line carries ``image``: its picture (base64), size, type and CLIP vector with
the CLIP space that made it, always (only a CLIP model could make it again).
History is not exported: a backup keeps it, an export moves memories only.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gateway.backup.snapshot import BackupError, refuse_postgres
from gateway.domain.model import Memory, StoredImage, StoredMemory
from gateway.memory.conversation import attributed
from gateway.settings import Settings
from gateway.store.in_use import sole_use
from gateway.store.sqlite.files import export_snapshot
from gateway.store.sqlite.store import SQLiteStore
from gateway.store.types import RowConflict

EXPORT_FORMAT = "agent-memory-export"
EXPORT_VERSION = 1
IMPORT_BATCH = 500  # memories per transaction (and per Triton request without vectors)
_FIELDS = tuple(Memory.__dataclass_fields__)




# -- JSON Lines export / import -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ImportReport:
    imported: int
    skipped: int  # ids already present (with --skip-existing)
    embedded: int  # lines without a vector, embedded on the way in


def export_jsonl(settings: Settings, out: Path, *, vectors: bool = False,
                 user_id: str | None = None) -> int:
    """Write the memories (of one user, or all) as JSON Lines; returns how many."""
    refuse_postgres(settings, "export")
    if not settings.db_path.exists():
        raise BackupError(f"no store at {settings.db_path}")
    count = 0
    with export_snapshot(settings.db_path, user_id, vectors=vectors) as snapshot:
        header = {
            "format": EXPORT_FORMAT, "version": EXPORT_VERSION,
            "schema_version": snapshot.schema_version,
            "exported_at": datetime.now(UTC).isoformat(),
            "models": snapshot.models,
            "vectors": vectors,
        }
        with out.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(header) + "\n")
            for line in snapshot.rows:
                embedding = line.pop("embedding")
                if embedding is not None:
                    line["embedding"] = embedding.tolist()
                handle.write(json.dumps(line, ensure_ascii=False, allow_nan=False) + "\n")
                count += 1
    return count


def _read_export(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    handle = path.open(encoding="utf-8")
    try:
        header = json.loads(handle.readline())
    except ValueError as exc:
        handle.close()
        raise BackupError(f"{path}: no export header ({exc})") from exc
    if header.get("format") != EXPORT_FORMAT or header.get("version") != EXPORT_VERSION:
        handle.close()
        raise BackupError(f"{path} is not an {EXPORT_FORMAT} v{EXPORT_VERSION} file")

    def lines() -> Iterator[dict[str, Any]]:
        with handle:
            for number, text in enumerate(handle, start=2):
                if text.strip():
                    try:
                        yield json.loads(text)
                    except ValueError as exc:
                        raise BackupError(f"{path}:{number}: not JSON ({exc})") from exc

    return header, lines()


def _memory(line: dict[str, Any], label: str | None) -> Memory:
    try:
        fields = {name: line[name] for name in _FIELDS if name in line}
        if fields.get("sources") is not None:  # a summary's source ids (a JSON list)
            fields["sources"] = tuple(fields["sources"])
        if label is not None:
            fields["embedding_model"] = label
        return Memory(**fields)
    except TypeError as exc:
        raise BackupError(f"memory {line.get('id')!r}: {exc}") from exc


_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def _image(line: dict[str, Any]) -> StoredImage | None:
    """An image memory's picture and CLIP vector from its line (None on a text memory)."""
    image = line.get("image")
    if image is None:
        return None
    try:
        if image["mime"] not in _IMAGE_TYPES:
            raise ValueError(f"unknown image type {image['mime']!r}")
        vector = np.asarray(image["embedding"], dtype=np.float32)
        if vector.ndim != 1 or not np.isfinite(vector).all():
            raise ValueError("the image's embedding is not a finite vector")
        return StoredImage(base64.b64decode(image["data"], validate=True), image["mime"],
                           int(image["width"]), int(image["height"]), str(image["model"]),
                           vector)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise BackupError(f"memory {line.get('id')!r}: bad image: {exc}") from exc


def _other_version(line: dict[str, Any], model: str, active: str) -> bool:
    """Is the line's vector one of ``model``'s versions, but not the store's active one?"""
    made_by = str(line.get("embedding_model") or "")
    return "embedding" in line and made_by.startswith(f"{model}:") and made_by != active


def _context(line: dict[str, Any]) -> str | None:
    """A line's conversation context: absent (an older export) or null means none."""
    context = line.get("context")
    if context is not None and not isinstance(context, str):
        raise BackupError(f"memory {line.get('id')!r}: context must be a string or null")
    return context


async def _embedder(settings: Settings) -> Any:
    from gateway.inference.client import EmbedderClient
    from gateway.inference.remote_versions import RemoteVersions
    from gateway.metrics import Metrics

    metrics = Metrics()
    return EmbedderClient(settings.triton_grpc_url, settings.embedder_model,
                          timeout_s=max(settings.inference_timeout_s, 60.0),
                          retry_after_s=settings.retry_after_s, metrics=metrics,
                          remotes=RemoteVersions(settings.model_repository,
                                                 settings.embedder_model, metrics=metrics))


async def import_jsonl(settings: Settings, path: Path, *, skip_existing: bool = False
                       ) -> ImportReport:
    """Add the file's memories to the store, keeping ids and times. Refused while a gateway
    runs on it (``StoreBusy``): its index would never see them."""
    refuse_postgres(settings, "import")
    header, lines = _read_export(path)
    alone = sole_use(settings.db_path)
    try:
        return await _import_lines(settings, header, lines, skip_existing)
    finally:
        alone.release()


async def _import_lines(settings: Settings, header: dict[str, Any],
                        lines: Iterator[dict[str, Any]], skip_existing: bool) -> ImportReport:
    store = SQLiteStore(settings.db_path, synchronous=settings.sqlite_synchronous)
    await store.open()
    embedder = None
    imported = skipped = embedded = 0
    try:
        active = await store.adopt_versions(header.get("models") or {})
        version = active.get(settings.embedder_model)
        batch: list[dict[str, Any]] = []

        async def flush() -> None:
            nonlocal embedder, imported, skipped, embedded
            if skip_existing:
                known = await store.existing_ids([line["id"] for line in batch])
                skipped += sum(line["id"] in known for line in batch)
                batch[:] = [line for line in batch if line["id"] not in known]
            label = f"{settings.embedder_model}:{version}"
            for line in batch:  # a vector of another version than the active one: the
                if version is not None and _other_version(  # store refuses it; embed again
                        line, settings.embedder_model, label):
                    line.pop("embedding", None)
            bare = [line for line in batch if "embedding" not in line]
            if bare:
                if version is None:
                    raise BackupError("lines without vectors, and no embedder version known")
                embedder = embedder or await _embedder(settings)
                vectors = await embedder.embed(
                    [attributed(line["text"], line.get("speaker")) for line in bare], version)
                for line, vector in zip(bare, vectors, strict=True):
                    line["_vector"] = vector
                embedded += len(bare)
            items = []
            for line in batch:
                if "_vector" in line:
                    memory = _memory(line, label)
                    vector = line["_vector"]
                else:
                    memory = _memory(line, None)
                    vector = np.asarray(line["embedding"], dtype=np.float32)
                items.append(StoredMemory(memory, vector, context=_context(line),
                                          image=_image(line)))
            try:
                await store.insert_many(items)
            except RowConflict as exc:
                raise BackupError(f"cannot import (an id exists already? try --skip-existing): "
                                  f"{exc}") from exc
            imported += len(items)
            batch.clear()

        for line in lines:
            batch.append(line)
            if len(batch) >= IMPORT_BATCH:
                await flush()
        if batch:
            await flush()
    finally:
        if embedder is not None:
            await embedder.close()
        await store.close()
    return ImportReport(imported, skipped, embedded)
