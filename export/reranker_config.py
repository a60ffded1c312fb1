"""Generate ``model_repository/reranker/config.pbtxt`` and its warm-up samples.

The committed files are exactly ``files()`` (a test holds them equal). The gateway relies on the
contract: model ``reranker``, inputs ``QUERY`` and ``PASSAGE`` (TYPE_STRING, one pair per batch
row), output ``SCORE`` (TYPE_FP32, dims [1], the cross-encoder's raw logit: higher is more
relevant, no fixed range). Batching, queue policy and version policy are the embedder's, built
from the same blocks in ``triton_config``.
"""

from __future__ import annotations

from . import triton_config as shared

MODEL_NAME = "reranker"
QUERY_NAME = "QUERY"
PASSAGE_NAME = "PASSAGE"
OUTPUT_NAME = "SCORE"
GRAPH_OUTPUT = "logits"
# A search sends its whole candidate pool (max(limit * 4, 50), at most 400) in one request.
MAX_BATCH_SIZE = 1024
INNER_BATCH_SIZE = 64
TEMPLATES = ("reranker_model.py", "rerank_runtime.py")

# name -> (batch size, query, passage); Triton repeats a sample batch_size times.
WARMUP_SAMPLES: dict[str, tuple[int, str, str]] = {
    "short_pair": (1, "window seat?", "The user prefers window seats on long flights."),
    "long_pair": (
        8,
        "why did the nightly deploy fail and who rolled it back?",
        "Warm-up with a longer passage so the first real request does not pay for lazy "
        "initialisation: the nightly deploy failed because the migration locked the users "
        "table for eleven minutes, and the on-call engineer rolled it back by hand.",
    ),
}

_SCORE_OUTPUT = f"""output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ 1 ]
  }}
]"""


def _warmup_files(name: str) -> dict[str, str]:
    return {QUERY_NAME: f"{name}_query", PASSAGE_NAME: f"{name}_passage"}


def python_backend_config() -> str:
    """``reranker/config.pbtxt``: python backend running onnxruntime inside the version."""
    parts = [
        shared.header(
            "Python backend: pair tokenizer + onnxruntime inside <version>/model.py.",
            command="reranker",
            source="reranker_config.py",
        ),
        f'name: "{MODEL_NAME}"',
        'backend: "python"',
        f"max_batch_size: {MAX_BATCH_SIZE}",
        shared.string_inputs([QUERY_NAME, PASSAGE_NAME]),
        _SCORE_OUTPUT,
        shared.DYNAMIC_BATCHING,
        "instance_group [ { kind: KIND_CPU, count: 1 } ]",
        shared.LATEST_ONLY,
        shared.parameters(
            {
                "intra_op_threads": str(shared.INTRA_OP_THREADS),
                "inner_batch_size": str(INNER_BATCH_SIZE),
            }
        ),
        shared.warmup_block(
            {name: (batch, _warmup_files(name)) for name, (batch, _q, _p) in WARMUP_SAMPLES.items()}
        ),
    ]
    return "\n".join(parts) + "\n"


def files() -> dict[str, bytes]:
    """Every committed file under ``model_repository/reranker/`` (paths relative to it)."""
    out = {"config.pbtxt": python_backend_config().encode("utf-8")}
    for name, (_batch, query, passage) in WARMUP_SAMPLES.items():
        names = _warmup_files(name)
        out[f"warmup/{names[QUERY_NAME]}"] = shared.serialize_strings([query])
        out[f"warmup/{names[PASSAGE_NAME]}"] = shared.serialize_strings([passage])
    return out
