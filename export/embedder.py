"""``python -m export embedder``: export, validate and publish one embedder version.

Order matters: everything is built and validated in a staging folder first; only a version
that passed its parity checks is renamed into place, and the config is refreshed after it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from . import repository, triton_config
from .errors import ExportError
from .fingerprint import EXPORTER_VERSION, file_sha256
from .onnx_export import (
    GRAPH_FILE,
    TOKENIZER_EXTRAS,
    TOKENIZER_FILE,
    export_onnx,
    graph_io,
    max_seq_length,
    quantize_int8,
    tool_versions,
    write_tokenizer,
)
from .validate import (
    SENTENCES,
    Comparison,
    candidate_embeddings,
    compare,
    describe,
    reference_embeddings,
    require,
)

TEMPLATES = Path(__file__).resolve().parent / "triton"
RUNTIME_FILE = "embedding_runtime.py"
Log = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class EmbedderJob:
    """One export request, already checked against the repository's latest fingerprint."""

    source: Path
    repository: Path
    quantize: str | None
    backend: str
    tensorrt: bool
    fingerprint: str
    source_sha256: str
    atol: float = 1e-4
    min_cosine: float = 0.999
    int8_min_cosine: float = 0.97
    int8_mean_cosine: float = 0.98


def _next_version(job: EmbedderJob) -> int:
    names = [triton_config.MODEL_NAME]
    if job.backend == "onnxruntime":
        names += [triton_config.TOKENIZE_MODEL, triton_config.ONNX_MODEL]
    return repository.next_version(job.repository / name for name in names)


def _timed(log: Log, what: str, start: float) -> None:
    log(f"{what} ({time.perf_counter() - start:.1f} s)")


def build(job: EmbedderJob, stage: Path, log: Log) -> dict:
    """Fill ``stage`` with a validated version (python-backend layout); return the manifest."""
    seq_len = max_seq_length(job.source)
    write_tokenizer(job.source, stage, seq_len)
    shutil.copy2(TEMPLATES / RUNTIME_FILE, stage / RUNTIME_FILE)

    t0 = time.perf_counter()
    fp32_path = export_onnx(job.source, stage)
    _timed(log, f"exported ONNX graph ({fp32_path.stat().st_size / 1e6:.1f} MB)", t0)

    t0 = time.perf_counter()
    reference = reference_embeddings(job.source)
    fp32 = compare(
        "fp32", reference, candidate_embeddings(stage), atol=job.atol, cosine_bound=job.min_cosine
    )
    _timed(log, _figures(fp32), t0)
    require(fp32)
    validation = {"fp32": fp32.as_dict()}
    sizes = {"fp32_bytes": fp32_path.stat().st_size}

    if job.quantize == "int8":
        t0 = time.perf_counter()
        int8_path = quantize_int8(fp32_path, stage / "model.int8.onnx")
        int8_path.replace(fp32_path)  # the version serves the int8 graph
        int8 = compare(
            "int8",
            reference,
            candidate_embeddings(stage),
            atol=None,
            cosine_bound=job.int8_min_cosine,
            mean_cosine_bound=job.int8_mean_cosine,
        )
        _timed(log, _figures(int8), t0)
        require(int8)
        validation["int8"] = int8.as_dict()
        sizes["int8_bytes"] = fp32_path.stat().st_size

    inputs, outputs = graph_io(fp32_path)
    return {
        "model": triton_config.MODEL_NAME,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fingerprint": job.fingerprint,
        "exporter_version": EXPORTER_VERSION,
        "source": {"path": str(job.source), "sha256": job.source_sha256},
        "options": {"quantize": job.quantize, "backend": job.backend, "tensorrt": job.tensorrt},
        "tools": tool_versions(),
        "onnx": {"sha256": file_sha256(fp32_path), "inputs": inputs, "outputs": outputs, **sizes},
        "dimension": fp32.dimension,
        "max_seq_length": seq_len,
        "validation": {"texts": len(SENTENCES), **validation},
    }


def _figures(c: Comparison) -> str:
    return f"validated {describe(c)} {'ok' if c.passed else 'FAILED'}"


def run(job: EmbedderJob, log: Log) -> tuple[int, dict]:
    """Build, validate and publish; returns (version, manifest)."""
    model_dir = job.repository / triton_config.MODEL_NAME
    with repository.staging(model_dir) as stage:
        manifest = build(job, stage, log)
        version = _next_version(job)
        manifest["version"] = version
        if job.backend == "python":
            shutil.copy2(TEMPLATES / "embedder_model.py", stage / "model.py")
        else:
            manifest["models"] = _publish_ensemble_parts(job, stage, version)
        repository.write_manifest(stage, manifest)
        repository.publish(stage, model_dir, version)
    _write_configs(job, manifest)
    return version, manifest


def _publish_ensemble_parts(job: EmbedderJob, stage: Path, version: int) -> dict[str, int]:
    """Move the graph and tokenizer out of ``stage`` into their own models' versions."""
    onnx_dir = job.repository / triton_config.ONNX_MODEL
    with repository.staging(onnx_dir) as part:
        shutil.move(str(stage / GRAPH_FILE), part / GRAPH_FILE)
        repository.publish(part, onnx_dir, version)
    tokenize_dir = job.repository / triton_config.TOKENIZE_MODEL
    with repository.staging(tokenize_dir) as part:
        for name in (TOKENIZER_FILE, RUNTIME_FILE, *TOKENIZER_EXTRAS):
            if (stage / name).exists():
                shutil.move(str(stage / name), part / name)
        shutil.copy2(TEMPLATES / "tokenize_model.py", part / "model.py")
        repository.publish(part, tokenize_dir, version)
    return {
        name: version
        for name in (
            triton_config.MODEL_NAME,
            triton_config.TOKENIZE_MODEL,
            triton_config.ONNX_MODEL,
        )
    }


def _write_configs(job: EmbedderJob, manifest: dict) -> None:
    if job.backend == "python":
        repository.write_files(
            job.repository / triton_config.MODEL_NAME, triton_config.python_backend_files()
        )
        return
    configs = triton_config.onnxruntime_backend_configs(
        manifest["onnx"]["inputs"], manifest["dimension"], tensorrt=job.tensorrt
    )
    for name, text in configs.items():
        repository.write_files(job.repository / name, {"config.pbtxt": text.encode("utf-8")})


def check_source(source: Path) -> None:
    """Fail early with a clear message rather than deep inside optimum."""
    missing = [
        n for n in ("config.json", TOKENIZER_FILE, "modules.json") if not (source / n).is_file()
    ]
    if missing:
        raise ExportError(
            f"{source} is not a sentence-transformers model folder (missing {', '.join(missing)})"
        )
