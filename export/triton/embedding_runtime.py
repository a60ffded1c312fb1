"""Tokenise → ONNX → L2-normalise: the one code path shared by Triton and the exporter.

This file is copied verbatim into every model version directory next to ``model.py``, and the
exporter's validator imports that very copy. So "validated" means the tokenizer settings, the
padding, the graph and the normalisation that Triton will run, not a look-alike.

It must stay importable on its own inside the Triton python-backend stub: stdlib, numpy,
tokenizers and onnxruntime only, no imports from the ``export`` package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
OUTPUT_NAME = "sentence_embedding"
DEFAULT_INNER_BATCH = 64


def load_tokenizer(version_dir: Path) -> tuple[Tokenizer, int]:
    """Load the version's tokenizer and its pad id; truncation must be baked in by the exporter.

    A tokenizer without truncation would feed >max_seq_length tokens to the graph and fail (or,
    worse, silently differ from the reference), so refuse it here.
    """
    tokenizer = Tokenizer.from_file(str(version_dir / TOKENIZER_FILE))
    if tokenizer.truncation is None:
        raise ValueError(f"{version_dir / TOKENIZER_FILE} has no truncation set")
    padding = tokenizer.padding or {}
    # Padding is done per inner chunk below; a Fixed(128) padding from the hub file would waste
    # work on short texts and clash with truncation at 256.
    tokenizer.no_padding()
    return tokenizer, int(padding.get("pad_id", 0))


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation; zero rows stay zero instead of turning into NaN."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def pad_batch(
    ids: Sequence[Sequence[int]], pad: int, input_names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Right-pad token id lists to the longest one: int64 BERT-style inputs, keyed by name."""
    width = max((len(row) for row in ids), default=0)
    input_ids = np.full((len(ids), width), pad, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    available = {
        "input_ids": input_ids,
        "attention_mask": mask,
        "token_type_ids": np.zeros_like(input_ids),
    }
    missing = [name for name in input_names if name not in available]
    if missing:
        raise ValueError(f"graph wants inputs this runtime cannot build: {missing}")
    return {name: available[name] for name in input_names}


class EmbeddingRuntime:
    """Embed a list of texts into L2-normalised float32 rows, in input order.

    Texts are tokenised in one call, sorted by token count and run in chunks of
    ``inner_batch`` so a long text does not make 63 short ones pay for its padding.
    ``spinning``: whether idle intra-op threads busy-wait for the next run (ONNX Runtime's
    default).
    """

    def __init__(
        self,
        version_dir: Path,
        *,
        intra_op_threads: int = 0,
        inner_batch: int = DEFAULT_INNER_BATCH,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        spinning: bool = True,
    ) -> None:
        self.version_dir = Path(version_dir)
        self.tokenizer, self.pad_id = load_tokenizer(self.version_dir)
        self.inner_batch = max(1, int(inner_batch))
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_threads)
        options.inter_op_num_threads = 1
        # Idle intra-op threads spin by default (fast hand-off); a caller sharing a small CPU
        # with other work turns that off.
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if spinning else "0")
        self.session = ort.InferenceSession(
            str(self.version_dir / MODEL_FILE), sess_options=options, providers=list(providers)
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.dimension = int(self.session.get_outputs()[self._output_index()].shape[-1])

    def _output_index(self) -> int:
        names = [o.name for o in self.session.get_outputs()]
        if OUTPUT_NAME not in names:
            raise ValueError(f"graph has no {OUTPUT_NAME!r} output (has {names})")
        return names.index(OUTPUT_NAME)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to the model's max_seq_length."""
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]

    def feeds(self, ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Graph inputs for one chunk of token id lists."""
        return pad_batch(ids, self.pad_id, self.input_names)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Return ``(len(texts), dimension)`` float32, unit L2 norm, in input order."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.inner_batch):
            chunk = order[start : start + self.inner_batch]
            (vectors,) = self.session.run([OUTPUT_NAME], self.feeds([ids[i] for i in chunk]))
            out[chunk] = vectors
        return l2_normalise(out)
