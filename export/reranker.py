"""``python -m export reranker``: export, validate and publish one cross-encoder version.

Any Hugging Face sequence-classification model with a single logit works (BERT-style with
``token_type_ids``, or RoBERTa-style without): optimum exports it with
``task="text-classification"``, the version's own runtime is checked against the PyTorch model
on fixed (query, passage) pairs, and only a version that passed is renamed into place, as for
the embedder.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import repository
from . import reranker_config as config
from .errors import ExportError
from .fingerprint import EXPORTER_VERSION, file_sha256
from .onnx_export import TOKENIZER_FILE, export_onnx, graph_io, tool_versions, write_tokenizer
from .rerank_validate import RUNTIME_FILE, candidate_scores, compare, describe, reference_scores
from .rerank_validate import require as require_parity
from .sources import read_json

TEMPLATES = Path(__file__).resolve().parent / "triton"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
Log = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class RerankerJob:
    """One export request, already checked against the repository's latest fingerprint."""

    source: Path
    repository: Path
    fingerprint: str
    source_sha256: str
    model_id: str  # what the user passed: a hub id or a folder
    max_length: int | None = None  # None: the model's own limit
    atol: float = 1e-4


def check_source(source: Path) -> None:
    """Fail early, with the reason, on anything that is not a single-logit cross-encoder."""
    cfg = read_json(source / "config.json")
    labels = len(cfg.get("id2label") or {}) or int(cfg.get("num_labels", 0) or 0)
    architectures = ", ".join(cfg.get("architectures") or []) or "unknown architecture"
    if labels != 1:
        raise ExportError(
            f"{source} is not a single-logit cross-encoder ({architectures}, {labels or 'no'} "
            "labels): a reranker must score a pair with one logit (num_labels=1)"
        )
    if not any((source / name).is_file() for name in WEIGHT_FILES):
        raise ExportError(f"{source} has no weights ({' or '.join(WEIGHT_FILES[:2])})")
    if not (source / TOKENIZER_FILE).is_file() and not (source / "tokenizer_config.json").is_file():
        raise ExportError(f"{source} has no tokenizer (tokenizer.json or tokenizer_config.json)")


def model_max_length(source: Path) -> int:
    """The longest pair the model takes: the tokenizer's limit capped by its positions."""
    positions = read_json(source / "config.json").get("max_position_embeddings")
    limits = [positions] if isinstance(positions, int) and positions > 0 else []
    if (source / "tokenizer_config.json").is_file():
        declared = read_json(source / "tokenizer_config.json").get("model_max_length")
        if isinstance(declared, int | float) and 0 < declared < 1_000_000:  # 1e30 = unset
            limits.append(int(declared))
    if not limits:
        raise ExportError(f"{source}: no max_position_embeddings or model_max_length; pass "
                          "--max-length")
    return min(limits)


def _write_tokenizer(source: Path, stage: Path, max_length: int) -> None:
    """tokenizer.json with truncation at ``max_length``; converted when the model lacks one."""
    if (source / TOKENIZER_FILE).is_file():
        write_tokenizer(source, stage, max_length)
        return
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="tokenizer-") as tmp:
        fast = AutoTokenizer.from_pretrained(str(source), use_fast=True, local_files_only=True)
        if not fast.is_fast:
            raise ExportError(f"{source}: no fast tokenizer available to write tokenizer.json")
        fast.save_pretrained(tmp)
        write_tokenizer(Path(tmp), stage, max_length)


def build(job: RerankerJob, stage: Path, log: Log) -> dict:
    """Fill ``stage`` with a validated version (without model.py); return the manifest."""
    max_length = job.max_length or model_max_length(job.source)
    _write_tokenizer(job.source, stage, max_length)
    shutil.copy2(TEMPLATES / RUNTIME_FILE, stage / RUNTIME_FILE)

    started = time.perf_counter()
    graph = export_onnx(job.source, stage, task="text-classification", library="transformers")
    inputs, outputs = graph_io(graph)
    if config.GRAPH_OUTPUT not in outputs:
        raise ExportError(f"exported graph has no {config.GRAPH_OUTPUT!r} output ({outputs})")
    log(f"exported ONNX graph ({graph.stat().st_size / 1e6:.1f} MB, inputs {inputs}) "
        f"({time.perf_counter() - started:.1f} s)")

    started = time.perf_counter()
    reference = reference_scores(job.source, max_length)
    parity = compare("fp32", reference, candidate_scores(stage), atol=job.atol)
    log(f"validated {describe(parity)} {'ok' if parity.passed else 'FAILED'} "
        f"({time.perf_counter() - started:.1f} s)")
    require_parity(parity)
    return {
        "model": config.MODEL_NAME,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fingerprint": job.fingerprint,
        "exporter_version": EXPORTER_VERSION,
        "source": {"model": job.model_id, "path": str(job.source), "sha256": job.source_sha256},
        "options": {"max_length": job.max_length},
        "tools": tool_versions(),
        "onnx": {"sha256": file_sha256(graph), "inputs": inputs, "outputs": outputs,
                 "fp32_bytes": graph.stat().st_size},
        "max_length": max_length,
        "validation": {"fp32": parity.as_dict()},
    }


def run(job: RerankerJob, log: Log) -> tuple[int, dict]:
    """Build, validate and publish; returns (version, manifest)."""
    model_dir = job.repository / config.MODEL_NAME
    with repository.staging(model_dir) as stage:
        manifest = build(job, stage, log)
        version = repository.next_version([model_dir])
        manifest["version"] = version
        shutil.copy2(TEMPLATES / "reranker_model.py", stage / "model.py")
        repository.write_manifest(stage, manifest)
        repository.publish(stage, model_dir, version)
    repository.write_files(model_dir, config.files())
    return version, manifest
