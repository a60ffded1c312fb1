"""Triton python-backend model ``embedder``: UTF-8 texts in, L2-normalised float32 rows out.

Copied as ``<version>/model.py`` by ``python -m export embedder``. All maths lives in the
sibling ``embedding_runtime.py`` (the file the exporter validated), loaded by path so the stub
never picks up another copy from ``sys.path``.

One ``execute`` call receives every request the dynamic batcher merged; their texts are embedded
together (sorted by length, inner chunks) and split back, one response per request. A request
with bad input gets its own ``TritonError`` response; the others still succeed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import triton_python_backend_utils as pb_utils

INPUT_NAME = "TEXT"
OUTPUT_NAME = "EMBEDDING"
RUNTIME_FILE = "embedding_runtime.py"


def _load_runtime_module(version_dir: Path) -> ModuleType:
    """Import this version's embedding_runtime.py by path, never a same-named module elsewhere."""
    path = version_dir / RUNTIME_FILE
    spec = importlib.util.spec_from_file_location(f"embedding_runtime_v{version_dir.name}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parameter(config: dict, key: str, default: int) -> int:
    value = config.get("parameters", {}).get(key, {}).get("string_value", "")
    return int(value) if value.strip() else default


def _invalid_argument(message: str) -> pb_utils.TritonError:
    """A TritonError the client sees as INVALID_ARGUMENT (older stubs lack error codes)."""
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)


def _decode(array: np.ndarray) -> list[str]:
    """Flatten a TYPE_STRING tensor to str; raises UnicodeDecodeError on invalid UTF-8."""
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]


class TritonPythonModel:
    """Embedder served from its own version folder; no network, no torch."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        runtime = _load_runtime_module(version_dir)
        self.runtime = runtime.EmbeddingRuntime(
            version_dir,
            intra_op_threads=_parameter(config, "intra_op_threads", 0),
            inner_batch=_parameter(config, "inner_batch_size", runtime.DEFAULT_INNER_BATCH),
        )
        pb_utils.Logger.log_info(
            f"embedder: version {args['model_version']} loaded from {version_dir}, "
            f"dimension {self.runtime.dimension}, inputs {self.runtime.input_names}"
        )

    def execute(self, requests: list) -> list:
        texts: list[str] = []
        spans: list[tuple[int, int] | pb_utils.TritonError] = []
        for request in requests:
            tensor = pb_utils.get_input_tensor_by_name(request, INPUT_NAME)
            try:
                batch = _decode(tensor.as_numpy())
            except UnicodeDecodeError as exc:
                spans.append(_invalid_argument(f"{INPUT_NAME} is not valid UTF-8: {exc}"))
                continue
            spans.append((len(texts), len(texts) + len(batch)))
            texts.extend(batch)

        try:
            vectors = self.runtime.embed(texts)
        except Exception as exc:  # one failed run must still answer every request
            error = pb_utils.TritonError(f"embedding failed: {type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]

        responses = []
        for span in spans:
            if isinstance(span, pb_utils.TritonError):
                responses.append(pb_utils.InferenceResponse(error=span))
                continue
            start, stop = span
            out = pb_utils.Tensor(OUTPUT_NAME, np.ascontiguousarray(vectors[start:stop]))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses

    def finalize(self) -> None:
        self.runtime = None
