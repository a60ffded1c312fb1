"""Generate ``model_repository/clip_image/config.pbtxt`` and ``clip_text/config.pbtxt``.

The gateway relies on the contract: model ``clip_image`` takes ``IMAGE`` (TYPE_STRING, the
encoded bytes of one PNG/JPEG/WebP per batch row), model ``clip_text`` takes ``TEXT`` (one UTF-8
string per row); both answer ``EMBEDDING`` (TYPE_FP32, ``[dimension]``, unit L2 norm) in one
shared space, so a text's vector and an image's compare by cosine. One export writes both
towers under the same version number: a pair of equal versions is one space. The image tower
embeds pictures in bulk (adds, CLIP migrations) with the embedder's batching, queue policy and
version policy, built from the same blocks in ``triton_config``. The text tower embeds only
search queries, one at a time, so it runs without the dynamic batcher, as the embedder's query
twin does (``gateway.versions.query_model``): on this Triton a batcher now and then holds a
lone request ~500 ms, and it adds its queue delay to every query.
"""

from __future__ import annotations

from . import triton_config as shared

IMAGE_MODEL = "clip_image"
TEXT_MODEL = "clip_text"
MODELS = {IMAGE_MODEL: ("image", "IMAGE"), TEXT_MODEL: ("text", "TEXT")}
OUTPUT_NAME = "EMBEDDING"
MAX_BATCH_SIZE = 256
INNER_BATCH_SIZE = 32
TEMPLATES = ("clip_model.py", "clip_runtime.py")

_OUTPUT = f"""output [
  {{
    name: "{OUTPUT_NAME}"
    data_type: TYPE_FP32
    dims: [ -1 ]
  }}
]"""


def python_backend_config(model: str) -> str:
    """``<model>/config.pbtxt``: python backend running onnxruntime inside the version."""
    tower, input_name = MODELS[model]
    parts = [
        shared.header(f"Python backend: the CLIP {tower} tower on onnxruntime in model.py.",
                      command="clip", source="clip_config.py"),
        f'name: "{model}"',
        'backend: "python"',
        f"max_batch_size: {MAX_BATCH_SIZE}",
        shared.string_inputs([input_name]),
        _OUTPUT,
        *([shared.DYNAMIC_BATCHING] if model == IMAGE_MODEL else []),
        "instance_group [ { kind: KIND_CPU, count: 1 } ]",
        shared.LATEST_ONLY,
        shared.parameters({"tower": tower, "intra_op_threads": str(shared.INTRA_OP_THREADS),
                           "inner_batch_size": str(INNER_BATCH_SIZE)}),
    ]
    return "\n".join(parts) + "\n"


def files(model: str) -> dict[str, bytes]:
    """Every committed file under ``model_repository/<model>/`` (paths relative to it)."""
    return {"config.pbtxt": python_backend_config(model).encode("utf-8")}
