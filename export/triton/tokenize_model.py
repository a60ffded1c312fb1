"""Triton python-backend model ``embedder_tokenize``: the first step of the GPU ensemble.

Copied as ``<version>/model.py`` for ``--backend onnxruntime``. It turns UTF-8 texts into the
ONNX graph's int64 inputs with the same ``embedding_runtime.py`` (truncation, padding) that the
exporter validated; the native onnxruntime backend then runs ``embedder_onnx``. Each request is
padded to its own longest text, one response per request.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import triton_python_backend_utils as pb_utils

INPUT_NAME = "TEXT"
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


class TritonPythonModel:
    """Tokenizer step; output tensor names are the ONNX graph's input names (from config)."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.runtime = _load_runtime_module(version_dir)
        self.tokenizer, self.pad_id = self.runtime.load_tokenizer(version_dir)
        self.output_names = [output["name"] for output in config["output"]]

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            array = pb_utils.get_input_tensor_by_name(request, INPUT_NAME).as_numpy()
            try:
                texts = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.flat]
            except UnicodeDecodeError as exc:
                error = pb_utils.TritonError(f"{INPUT_NAME} is not valid UTF-8: {exc}")
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            ids = [enc.ids for enc in self.tokenizer.encode_batch(texts)]
            feeds = self.runtime.pad_batch(ids, self.pad_id, self.output_names)
            tensors = [pb_utils.Tensor(name, feeds[name]) for name in self.output_names]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        self.tokenizer = None
