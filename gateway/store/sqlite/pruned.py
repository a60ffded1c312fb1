"""Top-k BM25 over the live lexical index without ranking every posting: exact, by levels.

FTS5's ``bm25()`` scores every memory holding any query term, and counts each term's postings
for its idf on every query, so a search for common words costs what the user's size costs.
Here the same scores (FTS5's formula, k1 = 1.2, b = 0.75, column weights, store-wide document
count and average size, computed in the same order so they agree to the last bit) are
computed only for the memories that can reach the top ``k``:

1. ``docs`` per term and an upper bound on each term's contribution to one memory come from
   ``term_stats`` (one indexed row per query term); N and the average size from FTS5's own
   totals record.
2. Level ``m`` (from all ``n`` query terms down): FTS5 lists the memories holding at least
   ``m`` of the terms (an OR of ANDs, which FTS5 evaluates by skipping, without ``bm25()``);
   they are filtered as today. A memory new at this level holds exactly ``m`` terms, so its
   score is at most the sum of the ``m`` largest bounds at its own size (FTS5's per-row sizes):
   new memories are scored exactly from their re-analysed text, best bound first, until no
   bound left can reach the k-th score.
3. A memory holding fewer than ``m`` terms scores at most the sum of the ``m - 1`` largest
   bounds. Once ``k`` filtered candidates score at least that, no other memory can enter the
   top ``k``, so it is returned. Otherwise the next level runs.

It gives up (``None``: the caller ranks with FTS5 as before) where it would not be cheaper:
few postings in all, a query whose levels could need more than ``MAX_GROUPS`` AND groups (six
terms or more: decided before any work), a level with more than ``MAX_CANDIDATES`` memories,
more memories to score than ``POSTINGS_PER_SCORE`` allows, or column weights of 0 (FTS5 then
restricts the match to some columns and counts idf there).
"""

from __future__ import annotations

import heapq
import math
import sqlite3
from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from gateway.store.analyzer import date_terms, terms

K1 = 1.2  # FTS5's bm25() constants (fts5_aux.c)
B = 0.75
# Below this many postings in all, FTS5's ranking is cheaper: it ranks 10,000 in about 4 ms,
# while the levels re-analyse candidates in Python, and a query of seven or more terms can
# afford only two levels (more AND groups than MAX_GROUPS below them), so it often gives up:
# realistic questions (7-13 terms) of a 1,000-memory user hold ~2,500 postings and took 9 ms
# by levels before giving up, against 1.1 ms by FTS5.
SMALL_POSTINGS = 10_000
MAX_CANDIDATES = 2_000  # memories re-analysed per level at most
MAX_GROUPS = 16  # AND groups in one level's FTS5 expression at most
# One memory re-analysed and scored here costs about what FTS5's ranking spends on this many
# postings (measured: ~75 us against ~0.3 us). A search scores at most the user's query
# postings over this (and at least 2k), else it gives up: by levels it never costs much more
# than twice FTS5's ranking, even where many memories tie on every term (templated text).
POSTINGS_PER_SCORE = 200
SAFETY = 1 + 1e-9  # bounds widened past floating-point rounding


@dataclass(frozen=True)
class Term:
    folded: str  # user key + stem, as indexed
    idf: float
    most: float  # the most weighted hits of the term in one memory
    shortest: int  # the fewest terms of a memory holding it

    def bound(self, size: int, avgdl: float) -> float:
        """The most this term adds to the score of a memory of ``size`` terms or more."""
        return self.idf * _weight(self.most, max(size, self.shortest), avgdl) * SAFETY


def totals(conn: sqlite3.Connection, fts: str) -> tuple[int, int]:
    """(rows, tokens in all columns) of an FTS5 table: the record ``bm25()`` reads for N and
    the average size (rowid 1 of ``<fts>_data``: varints, rows then each column's tokens)."""
    row = conn.execute(f"SELECT block FROM {fts}_data WHERE id = 1").fetchone()
    if row is None:
        return 0, 0
    data, at, values = bytes(row[0]), 0, []
    while at < len(data):
        value, at = _varint(data, at)
        values.append(value)
    return (values[0], sum(values[1:])) if values else (0, 0)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's varint (big-endian 7-bit groups; a ninth byte carries 8 bits)."""
    value = 0
    for i in range(9):
        byte = data[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    raise AssertionError("unreachable")


def _idf(rows: int, hits: int) -> float:
    idf = math.log((rows - hits + 0.5) / (hits + 0.5))
    return idf if idf > 0.0 else 1e-6


def _weight(freq: float, size: int, avgdl: float) -> float:
    return (freq * (K1 + 1.0)) / (freq + K1 * (1 - B + B * size / avgdl))


def top_k(conn: sqlite3.Connection, user_key: str, words: list[str], k: int,
          weights: tuple[float, float, float], keep: Any) -> list[tuple[str, float]] | None:
    """The best ``k`` (memory id, score) for the query terms ``words`` (analysed, distinct,
    in query order) of the user whose lexical key is ``user_key``, on the live index; None
    where the caller should rank with FTS5. ``keep(docs)`` maps doc -> (memory id, said text,
    occurred_at, context) for the docs that pass the user and filters."""
    if k <= 0:
        return []
    if 0.0 in weights:
        return None
    folded_words = [user_key + word for word in words]
    marks = ",".join("?" * len(folded_words))
    stats = {row[0]: row[1:] for row in conn.execute(
        f"SELECT term, docs, body, occurred, context, shortest FROM lexical_terms "
        f"WHERE term IN ({marks})", folded_words)}
    if not stats:
        return []
    postings = sum(row[0] for row in stats.values())
    if postings <= SMALL_POSTINGS:
        return None
    budget = max(2 * k, postings // POSTINGS_PER_SCORE)  # memories scored at most
    if max(math.comb(len(stats), level) for level in range(1, len(stats) + 1)) > MAX_GROUPS:
        # Some level it may need has too many AND groups (six terms or more): it would give
        # up there after the work of the levels above. Measured on realistic questions (7-13
        # terms) of a 20,000-memory user: 146 ms by levels before giving up, 13 ms by FTS5.
        return None
    rows, tokens = totals(conn, "lexical_index")
    if rows == 0:
        return None
    avgdl = tokens / rows
    found = [Term(word, _idf(rows, stats[word][0]),
                  weights[0] * stats[word][1] + weights[1] * stats[word][2]
                  + weights[2] * stats[word][3], stats[word][4])
             for word in folded_words if word in stats]
    idfs = [_idf(rows, stats[w][0]) if w in stats else 0.0 for w in folded_words]
    bounds = sorted((t.bound(0, avgdl) for t in found), reverse=True)
    seen: set[int] = set()
    pending: list[tuple[float, int]] = []  # (-bound, doc): kept, not yet scored
    texts: dict[int, tuple[str, str, str, str | None]] = {}
    top: list[tuple[float, int, str]] = []  # (score, doc, id): the best k so far, min first
    for level in range(len(found), 0, -1):
        groups = list(combinations(found, level))
        if len(groups) > MAX_GROUPS:
            return None
        expression = " OR ".join("(" + " AND ".join(f'"{t.folded}"' for t in group) + ")"
                                 for group in groups)
        docs = [row[0] for row in conn.execute(
            "SELECT rowid FROM lexical_index WHERE lexical_index MATCH ? LIMIT ?",
            (expression, MAX_CANDIDATES + 1))]
        if len(docs) > MAX_CANDIDATES:
            return None
        fresh = [doc for doc in docs if doc not in seen]
        seen.update(fresh)
        kept = keep(fresh)
        # A doc new at this level holds exactly ``level`` of the terms: its score is at most
        # the sum of the ``level`` largest bounds at its own size.
        ceiling: dict[int, float] = {}  # size -> that bound (sizes repeat: computed once)
        for doc, size in sizes(conn, list(kept)).items():
            if size not in ceiling:
                at_size = sorted((t.bound(size, avgdl) for t in found), reverse=True)
                ceiling[size] = sum(at_size[:level])
            heapq.heappush(pending, (-ceiling[size], doc))
            texts[doc] = kept[doc]
        while pending and (len(top) < k or -pending[0][0] > top[0][0]):
            budget -= 1
            if budget < 0:
                return None
            doc = heapq.heappop(pending)[1]
            memory_id, said, occurred_at, context = texts.pop(doc)
            hit = (score(words, idfs, weights, avgdl, said, occurred_at, context), doc,
                   memory_id)
            (heapq.heappush if len(top) < k else heapq.heappushpop)(top, hit)
        unseen = sum(bounds[:level - 1])  # the most a memory with fewer terms can score
        if level == 1 or (len(top) == k and top[0][0] >= unseen):
            return [(memory_id, value) for value, _, memory_id in sorted(top, reverse=True)]
    return None


def sizes(conn: sqlite3.Connection, docs: list[int]) -> dict[int, int]:
    """doc -> its terms in all columns (FTS5's per-row sizes, ``<fts>_docsize``: the D of
    ``bm25()``)."""
    if not docs:
        return {}
    out: dict[int, int] = {}
    marks = ",".join("?" * len(docs))
    for doc, blob in conn.execute(
            f"SELECT id, sz FROM lexical_index_docsize WHERE id IN ({marks})", docs):
        data, at, total = bytes(blob), 0, 0
        while at < len(data):
            value, at = _varint(data, at)
            total += value
        out[doc] = total
    return out


def score(words: list[str], idfs: list[float], weights: tuple[float, float, float],
          avgdl: float, said: str, occurred_at: str, context: str | None) -> float:
    """FTS5's ``bm25()`` of one memory (positive), from its text as the triggers index it.

    Same arithmetic in the same order as ``fts5Bm25Function``: each term's frequency is the
    sum of its column weights hit by hit, in column order, and terms are added in query order.
    """
    columns = (terms(said), date_terms(occurred_at), terms(context or ""))
    size = sum(len(column) for column in columns)
    counts = [Counter(column) for column in columns]
    total = 0.0
    for word, idf in zip(words, idfs, strict=True):
        freq = 0.0
        for weight, count in zip(weights, counts, strict=True):
            for _ in range(count.get(word, 0)):
                freq += weight
        total += idf * (freq * (K1 + 1.0)) / (freq + K1 * (1 - B + B * size / avgdl))
    return total
