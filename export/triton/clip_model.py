"""Triton python-backend model ``clip_image`` or ``clip_text``: one CLIP tower.

Copied as ``<version>/model.py`` into both model folders by ``python -m export clip``; the
config parameter ``tower`` says which one this is. ``clip_image`` takes encoded image bytes
(TYPE_STRING ``IMAGE``), ``clip_text`` UTF-8 texts (``TEXT``); both answer ``EMBEDDING``, rows
of one L2-normalised space. The maths lives in the sibling ``clip_runtime.py`` (the file the
exporter validated), loaded by path. A request with an unreadable image or invalid UTF-8 gets
its own error; the other requests of the batch still succeed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import triton_python_backend_utils as pb_utils

OUTPUT_NAME = "EMBEDDING"
RUNTIME_FILE = "clip_runtime.py"


def _load_runtime_module(version_dir: Path) -> ModuleType:
    path = version_dir / RUNTIME_FILE
    spec = importlib.util.spec_from_file_location(f"clip_runtime_v{version_dir.name}", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parameter(config: dict, key: str, default: str) -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", "")
    return value.strip() or default


def _invalid_argument(message: str) -> pb_utils.TritonError:
    code = getattr(pb_utils.TritonError, "INVALID_ARG", None)
    return pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)


class TritonPythonModel:
    """One CLIP tower served from its own version folder; no network, no torch."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        runtime = _load_runtime_module(version_dir)
        self.tower = _parameter(config, "tower", "text")
        self.input_name = "IMAGE" if self.tower == "image" else "TEXT"
        self.runtime = runtime.ClipRuntime(
            version_dir, self.tower,
            intra_op_threads=int(_parameter(config, "intra_op_threads", "0")),
            inner_batch=int(_parameter(config, "inner_batch_size",
                                       str(runtime.DEFAULT_INNER_BATCH))))
        pb_utils.Logger.log_info(f"clip {self.tower}: version {args['model_version']} loaded, "
                                 f"dimension {self.runtime.dimension}")

    def _rows(self, request: object) -> list:
        """One request's model inputs: pixel arrays or texts; ValueError on bad input."""
        array = pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy()
        values = [v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)]
        if self.tower == "image":
            return [self.runtime.pixels(v) for v in values]
        return [v.decode("utf-8") for v in values]

    def execute(self, requests: list) -> list:
        rows: list = []
        spans: list[tuple[int, int] | pb_utils.TritonError] = []
        for request in requests:
            try:
                batch = self._rows(request)
            except ValueError as exc:  # UnicodeDecodeError is one too
                spans.append(_invalid_argument(f"{self.input_name}: {exc}"))
                continue
            spans.append((len(rows), len(rows) + len(batch)))
            rows.extend(batch)
        try:
            if not rows:
                vectors = np.zeros((0, self.runtime.dimension), dtype=np.float32)
            elif self.tower == "image":
                vectors = self.runtime.embed_pixels(rows)
            else:
                vectors = self.runtime.embed_texts(rows)
        except Exception as exc:  # one failed run must still answer every request
            error = pb_utils.TritonError(f"clip {self.tower} failed: {type(exc).__name__}: {exc}")
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
