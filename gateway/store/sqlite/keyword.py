"""BM25 keyword search over one user's memories, on the lexical index (see ``lexical``).

On the live index the top ``k`` are found by levels (``pruned``) where that is cheaper:
the same scores, without ranking every posting. Elsewhere, and where it gives up, FTS5 ranks
first and only the best ``max(k * factor, min)`` rows are looked up and filtered;
when the filters remove most of them, the filtered matches are ranked instead.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.domain.model import SearchFilters
from gateway.store.analyzer import query_terms
from gateway.store.sqlite import lexical, pruned
from gateway.store.sqlite.rows import filter_conditions

_LIVE_TABLES = ("lexical_index", "lexical_docs")
_ARCHIVE_TABLES = ("archive_lexical_index", "archive_lexical_docs")
PROBE_FACTOR = 4
PROBE_MIN = 64


def keyword_search(
    conn: sqlite3.Connection, user_id: str, query: str, k: int, filters: SearchFilters, *,
    date_weight: float, archived: bool, context_weight: float, key: lexical.LexicalKey,
) -> list[tuple[str, float]]:
    """(id, BM25 score) best first; see ``Store.keyword_search``."""
    words = query_terms(query)
    if not words:
        return []
    if not archived:
        where, args = filter_conditions(user_id, filters)
        best = pruned.top_k(
            conn, key.user(user_id), words, k, (1.0, date_weight, context_weight),
            lambda found: _keep_texts(conn, found, where, args))
        if best is not None:
            return best
    return fts5_search(conn, user_id, query, k, filters, date_weight=date_weight,
                       archived=archived, context_weight=context_weight, key=key)


def fts5_search(
    conn: sqlite3.Connection, user_id: str, query: str, k: int, filters: SearchFilters, *,
    date_weight: float, archived: bool, context_weight: float, key: lexical.LexicalKey,
) -> list[tuple[str, float]]:
    """The same answer ranked by FTS5's ``bm25()`` over every match (no levels): the path
    for small users and where ``pruned`` gives up, and the benchmarks' baseline."""
    fts, docs = _ARCHIVE_TABLES if archived else _LIVE_TABLES
    expression = lexical.match_expression(key, user_id, query, with_dates=date_weight > 0,
                                          with_context=context_weight > 0)
    if expression is None:
        return []
    where, args = filter_conditions(user_id, filters)
    probe = max(k * PROBE_FACTOR, PROBE_MIN)
    # bm25() is negative-is-better; it is turned around here, once.
    ranked = conn.execute(
        f"SELECT rowid, bm25({fts}, 1.0, ?, ?) AS score FROM {fts} "
        f"WHERE {fts} MATCH ? ORDER BY score LIMIT ?",
        [date_weight, context_weight, expression, probe]).fetchall()
    # Fast path: rank inside FTS5 alone, then look up and filter only the best ``probe``
    # rows (joining every match costs more than ranking it on big users).
    kept = _keep_docs(conn, [row[0] for row in ranked], where, args, docs)
    found = [(kept[doc], -float(score)) for doc, score in ranked if doc in kept]
    if len(found) >= k or len(ranked) < probe:
        return found[:k]  # every match was ranked, or enough passed the filters
    # Filters removed most of the best rows: rank the filtered matches instead.
    rows = conn.execute(
        f"SELECT d.memory_id, bm25({fts}, 1.0, ?, ?) AS rank FROM {fts} "
        f"JOIN {docs} d ON d.doc = {fts}.rowid "
        "JOIN memories m ON m.id = d.memory_id "
        f"WHERE {fts} MATCH ? AND {' AND '.join(where)} ORDER BY rank LIMIT ?",
        [date_weight, context_weight, expression, *args, k]).fetchall()
    return [(row[0], -float(row[1])) for row in rows]


def _keep_docs(conn: sqlite3.Connection, docs: list[int], where: list[str], args: list[Any],
               table: str) -> dict[int, str]:
    """doc -> memory id for the docs whose memory passes ``where`` (the user and filters)."""
    if not docs:
        return {}
    marks = ",".join("?" * len(docs))
    rows = conn.execute(
        # CROSS JOIN keeps the docs as the outer loop: the planner would otherwise walk
        # every memory of the user (its index on user_id) and probe the docs for each.
        f"SELECT d.doc, d.memory_id FROM {table} d CROSS JOIN memories m "
        f"ON m.id = d.memory_id WHERE d.doc IN ({marks}) AND {' AND '.join(where)}",
        [*docs, *args],
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def _keep_texts(conn: sqlite3.Connection, docs: list[int], where: list[str],
                args: list[Any]) -> dict[int, tuple[str, str, str, str | None]]:
    """doc -> (memory id, text after its speaker, occurred_at, context) for the live docs
    whose memory passes ``where``: what ``pruned`` scores."""
    if not docs:
        return {}
    marks = ",".join("?" * len(docs))
    rows = conn.execute(
        f"SELECT d.doc, d.memory_id, {lexical.said('m')}, m.occurred_at, m.context "
        "FROM lexical_docs d CROSS JOIN memories m "  # docs outer, as in _keep_docs
        f"ON m.id = d.memory_id WHERE d.doc IN ({marks}) AND {' AND '.join(where)}",
        [*docs, *args],
    ).fetchall()
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}
