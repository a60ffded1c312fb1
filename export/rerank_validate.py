"""Parity check for a reranker version: its own runtime against the PyTorch cross-encoder.

The candidate side imports ``rerank_runtime.py`` from the staged version (the file Triton will
run), so pair encoding, truncation, padding and the graph are checked together. Two bounds, both
must hold: max |logit diff| <= atol, and the same ranking of every query's passages (no pair of
passages swaps order, apart from exact ties in the reference).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import ValidationError
from .validate import load_runtime

RUNTIME_FILE = "rerank_runtime.py"
Groups = tuple[tuple[str, tuple[str, ...]], ...]

_LONG = " ".join(
    f"Paragraph {i} of a long incident report about deployments, rollbacks and pager duty."
    for i in range(60)
)  # ~900 tokens: longer than any cross-encoder's positions, so truncation is exercised

# (query, passages): every query ranks its own passages, relevant and not, some degenerate.
GROUPS: Groups = (
    (
        "what does the user think about hiking?",
        (
            "the user loves hiking in the Alps",
            "my sister got me into chess last year",
            "Hiking boots were on sale; the user bought two pairs.",
            "",
            "Emoji are tokens too 🚀🔥👍🏽",
        ),
    ),
    (
        "why did the deploy fail?",
        (
            "deploy failed because the database migration timed out",
            "The quick brown fox jumps over the lazy dog. " * 30,
            _LONG,
            "Ünïcödé: café, naïve, Straße, Ångström.",
        ),
    ),
    (
        "日本語の質問ですか?",
        (
            "日本語のテキストも埋め込めるはずです。",
            "مرحبا بالعالم — right-to-left text",
            "   leading and trailing whitespace\t\n",
        ),
    ),
    (
        _LONG,  # a query longer than the model: longest-first truncation cuts both sides
        (
            "short passage",
            "def add(a, b):\n    return a + b  # code snippet",
            "Numbers 3.14159, 2,718 and 1e-10 mixed with units: 5kg, 12ms, 99%.",
            "A" * 600,
        ),
    ),
)


def pairs(groups: Groups = GROUPS) -> tuple[list[str], list[str]]:
    """The groups flattened to parallel (queries, passages) lists."""
    queries = [q for q, passages in groups for _ in passages]
    return queries, [p for _, passages in groups for p in passages]


@dataclass(frozen=True)
class ScoreComparison:
    """How far the candidate's logits are from the reference, and whether rankings agree."""

    label: str
    pairs: int
    queries: int
    max_abs_diff: float
    discordant_pairs: int
    atol: float
    passed: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def reference_scores(source: Path, max_length: int, groups: Groups = GROUPS) -> np.ndarray:
    """Raw logits of the PyTorch model, tokenised by transformers (the model's own recipe)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(source), local_files_only=True)
    model.eval()
    queries, passages = pairs(groups)
    out = []
    with torch.inference_mode():
        for start in range(0, len(queries), 8):
            encoded = tokenizer(
                queries[start : start + 8], passages[start : start + 8], padding=True,
                truncation=True, max_length=max_length, return_tensors="pt",
            )
            out.append(model(**encoded).logits[:, 0].float().numpy())
    return np.concatenate(out)


def candidate_scores(version_dir: Path, groups: Groups = GROUPS) -> np.ndarray:
    """Logits from the staged version through its own runtime module."""
    runtime = load_runtime(version_dir, RUNTIME_FILE).RerankRuntime(version_dir)
    return runtime.score(*pairs(groups))


def discordant(reference: np.ndarray, candidate: np.ndarray, groups: Groups = GROUPS) -> int:
    """Passage pairs of one query that the two score vectors order differently."""
    count, start = 0, 0
    for _query, passages in groups:
        ref = reference[start : start + len(passages)]
        cand = candidate[start : start + len(passages)]
        start += len(passages)
        for i in range(len(passages)):
            for j in range(i + 1, len(passages)):
                if ref[i] != ref[j] and (ref[i] - ref[j]) * (cand[i] - cand[j]) <= 0:
                    count += 1
    return count


def compare(
    label: str,
    reference: np.ndarray,
    candidate: np.ndarray,
    *,
    atol: float,
    groups: Groups = GROUPS,
) -> ScoreComparison:
    if reference.shape != candidate.shape:
        raise ValidationError(
            f"{label}: shape {candidate.shape} differs from reference {reference.shape}"
        )
    diff = float(np.max(np.abs(reference - candidate)))
    swaps = discordant(reference, candidate, groups)
    return ScoreComparison(
        label=label,
        pairs=int(reference.shape[0]),
        queries=len(groups),
        max_abs_diff=diff,
        discordant_pairs=swaps,
        atol=atol,
        passed=diff <= atol and swaps == 0,
    )


def describe(c: ScoreComparison) -> str:
    ranking = "same ranking" if c.discordant_pairs == 0 else (
        f"{c.discordant_pairs} passage pairs ranked differently"
    )
    return (
        f"{c.label} on {c.pairs} pairs / {c.queries} queries: max |logit diff| "
        f"{c.max_abs_diff:.2e}, {ranking} (bounds: max |diff| <= {c.atol:g}, identical ranking)"
    )


def require(c: ScoreComparison) -> ScoreComparison:
    if not c.passed:
        raise ValidationError(f"{c.label} reranker failed validation: {describe(c)}")
    return c
