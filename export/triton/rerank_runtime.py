"""Tokenise (query, passage) pairs → ONNX cross-encoder → one raw logit per pair.

Copied verbatim into every reranker version next to ``model.py``; the exporter's validator
imports that very copy, so "validated" covers the pair encoding (special tokens, segment ids),
the truncation, the padding and the graph that Triton runs.

Self-contained on purpose (stdlib, numpy, tokenizers, onnxruntime; no ``export`` imports): it
must import inside the Triton python-backend stub from its own version folder. It mirrors
``embedding_runtime.py`` rather than importing it, because a version folder carries only its
own files and a pair needs real ``token_type_ids`` (the embedder's are all zero).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
OUTPUT_NAME = "logits"
DEFAULT_INNER_BATCH = 64


def load_tokenizer(version_dir: Path) -> tuple[Tokenizer, int]:
    """The version's tokenizer (truncation baked in by the exporter) and its pad id.

    Without truncation a long passage would exceed the model's positions and fail, or differ
    from the reference silently, so refuse such a file.
    """
    tokenizer = Tokenizer.from_file(str(version_dir / TOKENIZER_FILE))
    if tokenizer.truncation is None:
        raise ValueError(f"{version_dir / TOKENIZER_FILE} has no truncation set")
    padding = tokenizer.padding or {}
    tokenizer.no_padding()  # padded per inner chunk, to that chunk's longest pair
    return tokenizer, int(padding.get("pad_id", 0))


def pad_pairs(
    encodings: Sequence[Encoding], pad: int, input_names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Right-pad encoded pairs to the longest: int64 inputs keyed by the graph's names."""
    width = max((len(e.ids) for e in encodings), default=0)
    input_ids = np.full((len(encodings), width), pad, dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    segments = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        size = len(encoding.ids)
        input_ids[row, :size] = encoding.ids
        mask[row, :size] = 1
        segments[row, :size] = encoding.type_ids
    available = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": segments}
    missing = [name for name in input_names if name not in available]
    if missing:
        raise ValueError(f"graph wants inputs this runtime cannot build: {missing}")
    return {name: available[name] for name in input_names}


class RerankRuntime:
    """Score (query, passage) pairs with a single-logit cross-encoder, in input order.

    Pairs are encoded in one call, sorted by token count and run in chunks of ``inner_batch``,
    so one long passage does not make the short ones pay for its padding.
    """

    def __init__(
        self,
        version_dir: Path,
        *,
        intra_op_threads: int = 0,
        inner_batch: int = DEFAULT_INNER_BATCH,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        self.version_dir = Path(version_dir)
        self.tokenizer, self.pad_id = load_tokenizer(self.version_dir)
        self.inner_batch = max(1, int(inner_batch))
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(self.version_dir / MODEL_FILE), sess_options=options, providers=list(providers)
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if OUTPUT_NAME not in outputs or outputs[OUTPUT_NAME][-1] != 1:
            raise ValueError(f"graph is not a single-logit cross-encoder (outputs {outputs})")

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> list[Encoding]:
        """Pair encodings ([CLS] query [SEP] passage [SEP]), truncated longest-first."""
        if len(queries) != len(passages):
            raise ValueError(f"{len(queries)} queries but {len(passages)} passages")
        return self.tokenizer.encode_batch(list(zip(queries, passages, strict=True)))

    def score(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """float32 ``[len(pairs)]`` raw logits (higher is more relevant), in input order."""
        encodings = self.encode(queries, passages)
        out = np.zeros(len(encodings), dtype=np.float32)
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), self.inner_batch):
            chunk = order[start : start + self.inner_batch]
            feeds = pad_pairs([encodings[i] for i in chunk], self.pad_id, self.input_names)
            (logits,) = self.session.run([OUTPUT_NAME], feeds)
            out[chunk] = logits[:, 0]
        return out
