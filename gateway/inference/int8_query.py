"""An int8 copy of a version's graph for search queries, made once and kept beside it.

A lone query is one model run, and on a CPU ONNX Runtime's dynamic int8 graph (weights
quantised **per channel**; per tensor loses too much, cosine ~0.96) runs it about 2.3x faster
than fp32 (1.75 against 4.0 ms for MiniLM here). Stored memories keep the fp32 vectors Triton
made: a query vector from the int8 graph lies within cosine ~0.99 of the fp32 one, and on the
LoCoMo development set hybrid recall_any@10 is the same (docs/benchmarks/query-path.md).

The copy is a folder ``query-int8/`` inside the version's folder (Triton reads only the
version's own files; the folder name is not a version number): the int8 ``model.onnx`` plus the
tokenizer and runtime files, so ``load_runtime`` loads it like any version. Where the
repository is read-only it is made under the gateway's data directory instead. Made in a
scratch folder and renamed into place, so a crash never leaves half a graph; a copy whose
source changed (graph, runtime or tokenizer: another digest in its stamp) is made again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("gateway.inference")

FOLDER = "query-int8"
GRAPH = "model.onnx"
STAMP = "source.json"  # which fp32 graph the copy was made from
MANIFEST = "export_manifest.json"
KEEP = ("embedding_runtime.py", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "vocab.txt")


def already_int8(version_dir: Path) -> bool:
    """Whether the version itself serves an int8 graph (``export embedder --quantize int8``)."""
    try:
        manifest = json.loads((version_dir / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return (manifest.get("options") or {}).get("quantize") == "int8"


def graph_digest(version_dir: Path) -> str:
    """The fp32 graph's sha256: the export manifest's figure, else hashed here."""
    try:
        found = json.loads((version_dir / MANIFEST).read_text("utf-8"))["onnx"]["sha256"]
        if isinstance(found, str) and found:
            return found
    except (OSError, ValueError, KeyError, TypeError):
        pass
    digest = hashlib.sha256()
    with (version_dir / GRAPH).open("rb") as graph:
        for block in iter(lambda: graph.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_digest(version_dir: Path) -> str:
    """What the copy is made from: the graph's sha256 and the runtime and tokenizer files
    it copies (a version whose runtime was changed gets a fresh copy)."""
    graph = (version_dir / GRAPH).stat()  # a graph replaced without a new manifest
    digest = hashlib.sha256(f"{graph_digest(version_dir)}:{graph.st_size}:{graph.st_mtime_ns}"
                            .encode())
    for name in KEEP:
        path = version_dir / name
        digest.update(name.encode() + (path.read_bytes() if path.is_file() else b"-"))
    return digest.hexdigest()


def _current(folder: Path, digest: str) -> bool:
    try:
        stamp = json.loads((folder / STAMP).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("sha256") == digest and (folder / GRAPH).is_file()


def _quantise(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing": no accuracy gain for MiniLM
    try:
        quantize_dynamic(str(source), str(target), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def _build(version_dir: Path, folder: Path, digest: str) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-", dir=folder.parent))
    try:
        _quantise(version_dir / GRAPH, scratch / GRAPH)
        for name in KEEP:
            if (version_dir / name).is_file():
                shutil.copy2(version_dir / name, scratch / name)
        (scratch / STAMP).write_text(json.dumps({"sha256": digest, "per_channel": True}),
                                     "utf-8")
        if _current(folder, digest):
            return  # another gateway on this repository made it meanwhile
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a stale copy
        try:
            scratch.replace(folder)
        except OSError:
            if not _current(folder, digest):  # lost a race to another gateway: fine
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def int8_version(version_dir: Path, fallback: Path) -> Path:
    """The folder of ``version_dir``'s int8 query graph, made when missing or stale.

    ``fallback`` (a folder of the gateway's own) holds it when the version's folder is not
    writable. Raises ``OSError``/``ImportError`` and ONNX errors; the caller keeps fp32 then.
    """
    digest = source_digest(version_dir)
    places = (version_dir / FOLDER,
              fallback / f"{version_dir.parent.name}-{version_dir.name}-{digest[:16]}")
    for folder in places:
        if _current(folder, digest):
            return folder
    for folder in places:
        try:
            _build(version_dir, folder, digest)
        except OSError as exc:  # read-only (EACCES, EROFS) or blocked: try the next place
            log.info("query encoder: cannot place the int8 query graph in %s (%s); trying %s",
                     folder.parent, exc, fallback)
            continue
        return folder
    raise OSError(f"neither {version_dir} nor {fallback} can hold the int8 query graph")
