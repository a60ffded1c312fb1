"""Parity check: the version's own runtime (tokenizer + graph) against sentence-transformers.

The candidate side imports ``embedding_runtime.py`` from the staged version folder, i.e. the
file Triton will run, so the check covers tokenisation, truncation, padding and the graph
together. Figures end up in the manifest and the CLI output.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from .errors import ValidationError

_LONG = " ".join(
    f"Sentence {i} of a deliberately long memory about deployments, rollbacks and on-call notes."
    for i in range(40)
)  # ~600 tokens: only the first max_seq_length (256) count, as in sentence-transformers

SENTENCES: tuple[str, ...] = (
    "The user prefers window seats on long flights.",
    "deploy failed because the database migration timed out",
    "Hi",
    "",
    "   leading and trailing whitespace\t\n",
    "Ünïcödé: café, naïve, Straße, Ångström.",
    "日本語のテキストも埋め込めるはずです。",
    "Emoji are tokens too 🚀🔥👍🏽",
    "مرحبا بالعالم — right-to-left text",
    "!!! ??? ... --- ;;; ((( ))) [[[ ]]] {{{ }}}",
    "URL https://example.com/a/b?c=d&e=f#frag and email a.b@example.org",
    "Numbers 3.14159, 2,718 and 1e-10 mixed with units: 5kg, 12ms, 99%.",
    "def add(a, b):\n    return a + b  # code snippet",
    "A" * 300,
    _LONG,
    "The quick brown fox jumps over the lazy dog. " * 12,
)


@dataclass(frozen=True)
class Comparison:
    """How far a candidate is from the reference, and the bounds it was held to."""

    label: str
    texts: int
    dimension: int
    max_abs_diff: float
    min_cosine: float
    mean_cosine: float
    atol: float | None
    cosine_bound: float
    mean_cosine_bound: float | None
    passed: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def load_runtime(version_dir: Path, filename: str = "embedding_runtime.py") -> ModuleType:
    """Import a version's staged runtime file by path, exactly as model.py does in Triton."""
    path = version_dir / filename
    name = f"staged_{Path(filename).stem}_{version_dir.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValidationError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_embeddings(source: Path, texts: tuple[str, ...] = SENTENCES) -> np.ndarray:
    """sentence-transformers' own embeddings (pooled, normalised), on CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu", local_files_only=True)
    return model.encode(list(texts), batch_size=8, convert_to_numpy=True)


def candidate_embeddings(version_dir: Path, texts: tuple[str, ...] = SENTENCES) -> np.ndarray:
    """Embeddings from the staged version through its own runtime module."""
    runtime = load_runtime(version_dir).EmbeddingRuntime(version_dir)
    return runtime.embed(list(texts))


def compare(
    label: str,
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    atol: float | None,
    cosine_bound: float,
    mean_cosine_bound: float | None = None,
) -> Comparison:
    """Compare row by row; ``atol=None`` checks cosine only (for quantised graphs).

    Quantised graphs also get a bound on the *mean* cosine: their worst rows are short or
    degenerate texts, so a floor on the minimum plus a bound on typical quality says more than
    one number.
    """
    if reference.shape != candidate.shape:
        raise ValidationError(
            f"{label}: shape {candidate.shape} differs from reference {reference.shape}"
        )
    diff = float(np.max(np.abs(reference - candidate)))
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    cand = candidate / np.maximum(np.linalg.norm(candidate, axis=1, keepdims=True), 1e-12)
    cosines = np.sum(ref * cand, axis=1)
    min_cos, mean_cos = float(np.min(cosines)), float(np.mean(cosines))
    passed = (
        min_cos >= cosine_bound
        and (atol is None or diff <= atol)
        and (mean_cosine_bound is None or mean_cos >= mean_cosine_bound)
    )
    return Comparison(
        label=label,
        texts=int(reference.shape[0]),
        dimension=int(reference.shape[1]),
        max_abs_diff=diff,
        min_cosine=min_cos,
        mean_cosine=mean_cos,
        atol=atol,
        cosine_bound=cosine_bound,
        mean_cosine_bound=mean_cosine_bound,
        passed=passed,
    )


def require(comparison: Comparison) -> Comparison:
    """Raise ValidationError with the figures when a comparison is outside its bounds."""
    if not comparison.passed:
        raise ValidationError(f"{comparison.label} graph failed validation: {describe(comparison)}")
    return comparison


def bounds(c: Comparison) -> str:
    """The bounds a comparison was held to, in words."""
    parts = [] if c.atol is None else [f"max |diff| <= {c.atol:g}"]
    parts.append(f"min cosine >= {c.cosine_bound}")
    if c.mean_cosine_bound is not None:
        parts.append(f"mean cosine >= {c.mean_cosine_bound}")
    return ", ".join(parts)


def describe(c: Comparison) -> str:
    """One line with the figures and the bounds, for logs and error messages."""
    return (
        f"{c.label} on {c.texts} texts: max |diff| {c.max_abs_diff:.2e}, "
        f"min cosine {c.min_cosine:.6f}, mean cosine {c.mean_cosine:.6f} ({bounds(c)})"
    )
