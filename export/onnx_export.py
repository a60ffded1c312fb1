"""The heavy steps: HF/sentence-transformers → ONNX (optimum), int8 quantisation, tokenizers.

Imported only when an export is actually needed: it pulls in torch, transformers and optimum.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from tokenizers import Tokenizer

GRAPH_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
# Small tokenizer side files kept for provenance; the runtime reads only tokenizer.json.
TOKENIZER_EXTRAS = ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def max_seq_length(source: Path) -> int:
    """The truncation length sentence-transformers uses.

    Hub folders (all-MiniLM-L6-v2, all-mpnet-base-v2) state it as ``max_seq_length`` in
    sentence_bert_config.json; folders saved by sentence-transformers 5 keep it only as the
    tokenizer's ``model_max_length`` in tokenizer_config.json.
    """
    config_path = source / "sentence_bert_config.json"
    try:
        config = json.loads(config_path.read_text("utf-8"))
        if "max_seq_length" in config:
            return int(config["max_seq_length"])
        config_path = source / "tokenizer_config.json"
        return int(json.loads(config_path.read_text("utf-8"))["model_max_length"])
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"cannot read max_seq_length from {config_path}: {exc}") from exc


def export_onnx(
    source: Path,
    destination: Path,
    *,
    task: str = "feature-extraction",
    library: str = "sentence_transformers",
) -> Path:
    """Export ``source`` to ``destination/model.onnx`` with optimum, from local files only.

    The defaults are the embedder's: optimum's sentence_transformers path folds pooling and
    normalisation into the graph (output ``sentence_embedding``). A cross-encoder is
    ``task="text-classification", library="transformers"`` (output ``logits``).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from optimum.exporters.onnx import main_export
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about constant shapes are expected
        main_export(
            model_name_or_path=str(source),
            output=tmp,
            task=task,
            library_name=library,
            local_files_only=True,
        )
        target = destination / GRAPH_FILE
        shutil.move(str(Path(tmp) / GRAPH_FILE), target)
    return target


def quantize_int8(fp32: Path, int8: Path) -> Path:
    """Dynamic int8 with per-channel weights; per-tensor loses too much (cosine ~0.96)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing": tried, no accuracy gain here
    try:
        quantize_dynamic(str(fp32), str(int8), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return int8


def write_tokenizer(source: Path, destination: Path, max_length: int) -> Path:
    """Save the source's fast tokenizer with truncation baked in at ``max_length``.

    The hub file of all-MiniLM-L6-v2 says truncation 128 / fixed padding 128, while
    sentence-transformers truncates at 256: the version's tokenizer.json must carry the latter.
    """
    tokenizer = Tokenizer.from_file(str(source / TOKENIZER_FILE))
    padding = tokenizer.padding or {}
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(
        pad_id=int(padding.get("pad_id", 0)), pad_token=str(padding.get("pad_token", "[PAD]"))
    )
    target = destination / TOKENIZER_FILE
    tokenizer.save(str(target))
    for name in TOKENIZER_EXTRAS:
        if (source / name).is_file():
            shutil.copy2(source / name, destination / name)
    return target


def graph_io(path: Path) -> tuple[list[str], list[str]]:
    """(input names, output names) of an ONNX graph, read without building a session."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    return inputs, [o.name for o in model.graph.output]


def tool_versions() -> dict[str, str]:
    """Versions of the tools that shaped the graph, for the manifest."""
    from importlib.metadata import PackageNotFoundError, version

    names = (
        "optimum",
        "optimum-onnx",
        "onnx",
        "onnxruntime",
        "torch",
        "transformers",
        "sentence-transformers",
        "tokenizers",
    )
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
