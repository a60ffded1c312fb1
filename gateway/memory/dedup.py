"""Duplicate detection at write: when is a new text the same memory as one already kept?

Two texts are duplicates when their normalised, case-folded texts are identical (the
``normalise.text_key``), or when they are *near* duplicates: the nearest stored vectors
(cosine at least ``DedupPolicy.min_cosine``) are candidates, and a candidate is a duplicate
when the two texts say the same words in the same order, apart from punctuation, filler
phrases ("FYI", "just so you know"), contractions ("I'm" / "I am") and a typo or two in long
words.

Why not a cosine threshold alone: measured on the labelled set (``loadtest/bench/dedup.py``),
sentence embeddings put "meeting with Ben on Friday at 3 pm" and "... at 6 pm" at cosine
0.99, above most real duplicates, while one transposed letter ("Torotno") drops a duplicate to
0.5. No threshold separates the two; the vector finds candidates, the words decide.
``DedupPolicy.lexical=False`` gives the plain cosine rule for those who want it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.domain.normalise import normalise_text

if TYPE_CHECKING:
    from gateway.settings import Settings

DEFAULT_MIN_COSINE = 0.3  # candidate floor (with the lexical check); see loadtest/bench/dedup.py
DEFAULT_CANDIDATES = 16  # nearest stored memories compared per new text
MAX_TYPOS = 2  # differing words a near duplicate may have, each one edit apart
MIN_TYPO_WORD = 5  # shorter words differ in meaning, not by typos ("Ben" / "Ken")
CACHED_TEXT_CHARS = 512  # texts up to this long keep their words in a cache ...
WORDS_CACHE_SIZE = 2048  # ... of this many entries (~2 MB for 100-char texts, 30 MB at worst)

_WORD = re.compile(r"\w+")
_CONTRACTIONS = [
    (re.compile(r"\bwon't\b"), "will not"), (re.compile(r"\bcan't\b"), "can not"),
    (re.compile(r"\bcannot\b"), "can not"), (re.compile(r"n't\b"), " not"),
    (re.compile(r"'m\b"), " am"), (re.compile(r"'re\b"), " are"), (re.compile(r"'ve\b"), " have"),
    (re.compile(r"'ll\b"), " will"), (re.compile(r"'d\b"), " would"),
]
# Phrases that announce a fact without adding to it, dropped from the start of a text.
_LEAD_INS = re.compile(
    r"^(?:(?:just )?so you know|fyi|by the way|btw|note|remember(?: that)?|please note"
    r"(?: that)?|reminder|for the record|heads up)\b[\s,:;-]*")


@dataclass(frozen=True, slots=True)
class DedupPolicy:
    """How writes find duplicates (settings ``MEMORY_DEDUP_*``)."""

    enabled: bool = True  # the default for requests that do not say ``dedup``
    min_cosine: float = DEFAULT_MIN_COSINE
    candidates: int = DEFAULT_CANDIDATES
    lexical: bool = True  # False: any candidate at min_cosine or above is a duplicate

    @classmethod
    def from_settings(cls, settings: Settings) -> DedupPolicy:
        return cls(settings.dedup_enabled, settings.dedup_min_cosine,
                   settings.dedup_candidates, settings.dedup_lexical)


def words(text: str) -> list[str]:
    """The words a near-duplicate comparison sees: case-folded, contractions expanded,
    lead-in phrases and punctuation dropped."""
    return list(_cached_words(text) if len(text) <= CACHED_TEXT_CHARS else _words(text))


def _words(text: str) -> tuple[str, ...]:
    text = normalise_text(text).casefold().replace("\u2019", "'")
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    text = _LEAD_INS.sub("", text)
    return tuple(_WORD.findall(text))


# A write compares each new text with up to ``candidates`` others, and a batch's texts with
# each other: the same texts come back many times. Short texts only, so the cache stays small.
_cached_words = functools.lru_cache(maxsize=WORDS_CACHE_SIZE)(_words)


def _one_edit(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance exactly 1 (one substitution, insertion, deletion, or a
    transposition of neighbours)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        return (len(diff) == 2 and diff[1] == diff[0] + 1
                and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long[i]:
        i += 1
    return short[i:] == long[i + 1:]


def _typo(a: str, b: str) -> bool:
    return (min(len(a), len(b)) >= MIN_TYPO_WORD and a.isalpha() and b.isalpha()
            and _one_edit(a, b))


def near_duplicate(a: str, b: str) -> bool:
    """Same words in the same order, up to ``MAX_TYPOS`` one-edit typos in long words.

    Numbers, times, names, days and negations are words: a change in any of them is a
    different fact, however close the sentences' vectors are.
    """
    left, right = (_cached_words(t) if len(t) <= CACHED_TEXT_CHARS else _words(t)
                   for t in (a, b))
    return same_words(left, right)


def same_words(left: Sequence[str], right: Sequence[str]) -> bool:
    """``near_duplicate`` on texts already split by ``words`` (for many comparisons)."""
    if len(left) != len(right) or not left:
        return False
    typos = 0
    for x, y in zip(left, right, strict=True):
        if x == y:
            continue
        if not _typo(x, y):
            return False
        typos += 1
        if typos > MAX_TYPOS:
            return False
    return True


def is_duplicate(policy: DedupPolicy, new: str, old: str, cosine: float) -> bool:
    """Whether ``new`` repeats ``old``, given the cosine of their vectors."""
    if cosine < policy.min_cosine:
        return False
    return near_duplicate(new, old) if policy.lexical else True
