"""Keyword search in PostgreSQL from a postings table (migration 6): one row per (memory,
user-keyed term) with the term's count in each column and the document's length, indexed by
term, so a search reads only its terms' postings and ranks them with FTS5's BM25.

Why a table beside the ``tsvector``: ranking from the documents meant unnesting every
matching document's whole ``tsvector`` (all of its terms, to find the query's), about 5 ms
for a question matching 274 of a conversation's 419 memories; the postings hold exactly the
rows BM25 needs. The documents (``lexical_docs``) stay the source: a row trigger rewrites a
document's postings whenever the document is written, replaced, moved to or from the archive
or deleted, in that statement's transaction, so every write path (insert, update, delete,
archive, restore, erase, import, the lexical switch) keeps them without code of its own.

A posting's frequency for a query is ``text_n + date_weight * date_n + context_weight *
context_n`` over the columns whose weight is above 0 (as FTS5 with its column weights); a
posting with no count in those columns does not match (it adds nothing to n, the documents
matching the term). N and the average length come from ``lexical_totals`` as before.
"""

from __future__ import annotations

from typing import Any

from gateway.domain.model import Memory
from gateway.store.analyzer import query_terms
from gateway.store.postgres.lexical import Lexicon
from gateway.store.postgres.rows import (
    M_COLUMNS,
    Conn,
    fetch_all,
    filter_conditions,
    row_to_memory,
)

K1, B = 1.2, 0.75

_KEY = 'TEXT COLLATE "C"'

SCHEMA = f"""
CREATE TABLE lexical_postings (
    memory_id {_KEY} NOT NULL,
    lexeme    {_KEY} NOT NULL,
    archived  BOOLEAN NOT NULL,
    length    INTEGER NOT NULL,
    text_n    SMALLINT NOT NULL,
    date_n    SMALLINT NOT NULL,
    context_n SMALLINT NOT NULL,
    PRIMARY KEY (memory_id, lexeme)
);
CREATE INDEX lexical_postings_by_lexeme ON lexical_postings (lexeme, archived)
    INCLUDE (memory_id, length, text_n, date_n, context_n);

CREATE FUNCTION lexical_post() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.terms = OLD.terms AND NEW.length = OLD.length
            AND NEW.memory_id = OLD.memory_id THEN  -- only moved to or from the archive
        UPDATE lexical_postings SET archived = NEW.archived WHERE memory_id = NEW.memory_id
            AND archived <> NEW.archived;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM lexical_postings WHERE memory_id = OLD.memory_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO lexical_postings
            (memory_id, lexeme, archived, length, text_n, date_n, context_n)
        SELECT NEW.memory_id, u.lexeme, NEW.archived, NEW.length,
               count(*) FILTER (WHERE w = 'A'), count(*) FILTER (WHERE w = 'B'),
               count(*) FILTER (WHERE w = 'C')
        FROM unnest(NEW.terms) AS u (lexeme, positions, weights)
        CROSS JOIN LATERAL unnest(u.weights) AS w
        GROUP BY u.lexeme;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER lexical_docs_posted AFTER INSERT OR DELETE OR UPDATE ON lexical_docs
    FOR EACH ROW EXECUTE FUNCTION lexical_post();

INSERT INTO lexical_postings (memory_id, lexeme, archived, length, text_n, date_n, context_n)
SELECT d.memory_id, u.lexeme, d.archived, d.length,
       count(*) FILTER (WHERE w = 'A'), count(*) FILTER (WHERE w = 'B'),
       count(*) FILTER (WHERE w = 'C')
FROM lexical_docs d
CROSS JOIN LATERAL unnest(d.terms) AS u (lexeme, positions, weights)
CROSS JOIN LATERAL unnest(u.weights) AS w
GROUP BY d.memory_id, u.lexeme, d.archived, d.length;

DROP INDEX lexical_docs_terms;
"""
# The GIN index on the documents answered the old search only; the postings replace it.

_SEARCH = """
WITH hit AS (
    SELECT p.memory_id, p.length, p.lexeme,
           p.text_n + %(date_weight)s * p.date_n + %(context_weight)s * p.context_n AS f
    FROM unnest(%(lexemes)s::text[]) AS q (lexeme)
    CROSS JOIN LATERAL (
        SELECT * FROM lexical_postings p
        WHERE p.lexeme = q.lexeme AND p.archived = %(archived)s) AS p
), df AS (
    SELECT lexeme, count(*) AS n FROM hit WHERE f > 0 GROUP BY lexeme
), totals AS (
    SELECT greatest(sum(docs), 1)::float8 AS n, sum(tokens)::float8 AS tokens
    FROM lexical_totals WHERE archived = %(archived)s
), scored AS (
    SELECT hit.memory_id,
           sum(CASE WHEN ln((t.n - df.n + 0.5) / (df.n + 0.5)) > 0
                    THEN ln((t.n - df.n + 0.5) / (df.n + 0.5)) ELSE 1e-6 END
               * hit.f * (%(k1)s + 1.0)
               / (hit.f + %(k1)s * (1 - %(b)s + %(b)s * hit.length
                                    / greatest(t.tokens / t.n, 1e-9)))) AS score
    FROM hit JOIN df USING (lexeme) CROSS JOIN totals t
    WHERE hit.f > 0
    GROUP BY hit.memory_id
)
SELECT s.memory_id, s.score{kept_columns}
FROM (SELECT * FROM scored ORDER BY score DESC, memory_id OFFSET 0) AS s
CROSS JOIN LATERAL (
    SELECT {probe} FROM memories m WHERE m.id = s.memory_id AND {where} OFFSET 0) AS kept
ORDER BY s.score DESC, s.memory_id LIMIT %(k)s
"""
# Each term's postings are one index range (the LATERAL per term keeps the planner on the
# index even without statistics, on a fresh or quickly grown table). The LATERAL probe of
# ``memories`` (OFFSET 0 keeps the planner from turning it into a join) looks each scored
# memory up by its key: a join would read every memory of the user to keep a few dozen.
# Scored best first before the probe, so the probe stops once ``k`` memories passed the
# filters; ``keyword_memories`` reads their columns in that probe. One statement, no
# transaction: a search is one round trip.


def statement(lexicon: Lexicon, user_id: str, query: str, k: int, filters: Any, *,
              date_weight: float, archived: bool, context_weight: float, rows: bool = False
              ) -> tuple[str, dict[str, Any]] | None:
    """The search's SQL and parameters (``rows``: each hit's memory columns too); None when
    nothing can match."""
    words = query_terms(query)
    if not words or k <= 0:
        return None
    folded = lexicon.key.user(user_id)
    lexemes = list(dict.fromkeys(folded + word for word in words))  # a term counts once
    where, args = filter_conditions(user_id, filters)
    named = {f"f{i}": value for i, value in enumerate(args)}
    conditions = " AND ".join(where)
    for i in range(len(args)):  # positional marks of the filters -> named ones
        conditions = conditions.replace("%s", f"%(f{i})s", 1)
    sql = _SEARCH.format(where=conditions, kept_columns=", kept.*" if rows else "",
                         probe=M_COLUMNS if rows else "1")
    return sql, {
        "date_weight": max(float(date_weight), 0.0),
        "context_weight": max(float(context_weight), 0.0),
        "lexemes": lexemes, "archived": archived, "k1": K1, "b": B, "k": k, **named}


async def keyword_search(conn: Conn, lexicon: Lexicon, user_id: str, query: str, k: int,
                         filters: Any, *, date_weight: float, archived: bool,
                         context_weight: float) -> list[tuple[str, float]]:
    """(id, BM25 score) best first; see ``Store.keyword_search``."""
    search = statement(lexicon, user_id, query, k, filters, date_weight=date_weight,
                       archived=archived, context_weight=context_weight)
    if search is None:
        return []
    rows = await fetch_all(conn, *search)
    return [(row["memory_id"], float(row["score"])) for row in rows]


async def keyword_memories(conn: Conn, lexicon: Lexicon, user_id: str, query: str, k: int,
                           filters: Any, *, date_weight: float, archived: bool,
                           context_weight: float) -> list[tuple[Memory, float]]:
    """(memory, BM25 score) best first; see ``Store.keyword_memories``."""
    search = statement(lexicon, user_id, query, k, filters, date_weight=date_weight,
                       archived=archived, context_weight=context_weight, rows=True)
    if search is None:
        return []
    rows = await fetch_all(conn, *search)
    return [(row_to_memory(row), float(row["score"])) for row in rows]
