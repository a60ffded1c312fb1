"""Triton python-backend model ``reranker``: (QUERY, PASSAGE) strings in, one raw logit out.

Copied as ``<version>/model.py`` by ``python -m export reranker``. The maths lives in the
sibling ``rerank_runtime.py`` (the file the exporter validated), loaded by path so the stub
never picks up a same-named module from another version.

Same execute() pattern as the embedder: every pair of every request the dynamic batcher merged
is scored together (length-sorted inner chunks) and split back, one response per request; a
request with bad input (invalid UTF-8, QUERY and PASSAGE of different lengths) gets its own
error and the others still succeed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import triton_python_backend_utils as pb_utils

QUERY_NAME = "QUERY"
PASSAGE_NAME = "PASSAGE"
OUTPUT_NAME = "SCORE"
RUNTIME_FILE = "rerank_runtime.py"


def _load_runtime_module(version_dir: Path) -> ModuleType:
    path = version_dir / RUNTIME_FILE
    spec = importlib.util.spec_from_file_location(f"rerank_runtime_v{version_dir.name}", path)
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


def _strings(request: object, name: str) -> list[str]:
    """A TYPE_STRING input flattened to str; raises UnicodeDecodeError on invalid UTF-8."""
    array = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]


class TritonPythonModel:
    """Cross-encoder served from its own version folder; no network, no torch."""

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        runtime = _load_runtime_module(version_dir)
        self.runtime = runtime.RerankRuntime(
            version_dir,
            intra_op_threads=_parameter(config, "intra_op_threads", 0),
            inner_batch=_parameter(config, "inner_batch_size", runtime.DEFAULT_INNER_BATCH),
        )
        pb_utils.Logger.log_info(
            f"reranker: version {args['model_version']} loaded from {version_dir}, "
            f"inputs {self.runtime.input_names}"
        )

    def execute(self, requests: list) -> list:
        queries: list[str] = []
        passages: list[str] = []
        spans: list[tuple[int, int] | pb_utils.TritonError] = []
        for request in requests:
            try:
                query, passage = _strings(request, QUERY_NAME), _strings(request, PASSAGE_NAME)
            except UnicodeDecodeError as exc:
                spans.append(_invalid_argument(f"QUERY/PASSAGE is not valid UTF-8: {exc}"))
                continue
            if len(query) != len(passage):
                spans.append(_invalid_argument(
                    f"{len(query)} {QUERY_NAME} rows but {len(passage)} {PASSAGE_NAME} rows"
                ))
                continue
            spans.append((len(queries), len(queries) + len(query)))
            queries.extend(query)
            passages.extend(passage)

        try:
            scores = self.runtime.score(queries, passages)
        except Exception as exc:  # one failed run must still answer every request
            error = pb_utils.TritonError(f"reranking failed: {type(exc).__name__}: {exc}")
            return [pb_utils.InferenceResponse(error=error) for _ in requests]

        responses = []
        for span in spans:
            if isinstance(span, pb_utils.TritonError):
                responses.append(pb_utils.InferenceResponse(error=span))
                continue
            start, stop = span
            out = pb_utils.Tensor(OUTPUT_NAME, np.ascontiguousarray(scores[start:stop, None]))
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
        return responses

    def finalize(self) -> None:
        self.runtime = None
