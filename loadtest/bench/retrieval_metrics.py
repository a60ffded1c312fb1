"""Turn-level retrieval scores: recall_any@k and recall_all@k, overall and per category.

recall_any@k is 1 for a question when any of its evidence turns is among the top k results,
recall_all@k when all of them are; both are averaged over the questions. Pure functions, so the
benchmark's arithmetic is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

KS = (5, 10, 20)


@dataclass(frozen=True)
class Answer:
    """One question's ranked result ids next to what should have been found."""

    category: int
    evidence: frozenset[str]
    ranked: tuple[str, ...]


def hit_any(answer: Answer, k: int) -> bool:
    return not answer.evidence.isdisjoint(answer.ranked[:k])


def hit_all(answer: Answer, k: int) -> bool:
    return answer.evidence <= set(answer.ranked[:k])


def recall(answers: Sequence[Answer], ks: Iterable[int] = KS) -> dict[str, float]:
    """``{"any@5": ..., "all@5": ..., ...}`` over ``answers`` (empty: every figure 0)."""
    out: dict[str, float] = {}
    for k in ks:
        count = max(len(answers), 1)
        out[f"any@{k}"] = round(sum(hit_any(a, k) for a in answers) / count, 4)
        out[f"all@{k}"] = round(sum(hit_all(a, k) for a in answers) / count, 4)
    return out


def recall_report(answers: Sequence[Answer], categories: dict[int, str],
                  ks: Iterable[int] = KS) -> dict[str, object]:
    """Overall and per-category recall, with the question counts they rest on."""
    ks = tuple(ks)
    per_category = {}
    for number, name in categories.items():
        subset = [a for a in answers if a.category == number]
        per_category[name] = {"questions": len(subset), **recall(subset, ks)}
    return {"questions": len(answers), "overall": recall(answers, ks),
            "per_category": per_category}


def latency(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/mean in milliseconds of wall-clock request times."""
    if not samples_s:
        return {"p50_ms": 0.0, "p99_ms": 0.0, "mean_ms": 0.0}
    ms = np.asarray(samples_s) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "mean_ms": round(float(ms.mean()), 2)}
