"""The lexical (keyword) index in PostgreSQL: the project's analyser, a ``tsvector`` with a
GIN index, and BM25 computed the way SQLite's FTS5 computes it, so both backends rank alike.

PostgreSQL's own parsers and dictionaries never see the text: ``gateway.store.analyzer``
makes the terms (as for SQLite), each is prefixed with the salted user key (``LexicalKey``,
the same scheme and reason as ``gateway.store.sqlite.lexical``: a user's search walks only
that user's postings) and written as a ``tsvector`` literal whose positions carry the column
in their weight label: A the text (after the speaker's name), B the date, C the conversation
context. A search is a ``tsquery`` of the folded query terms (OR), restricted to the labels
whose weight is above 0, answered by the GIN index.

BM25 as FTS5's ``bm25()``: k1 = 1.2, b = 0.75; a term's frequency in a document is the sum
of its column weights over its positions; idf = ln((N - n + 0.5) / (n + 0.5)), 1e-6 where
that is not positive, with N the documents of the index (live or archive) and n those that
match the term (computed per query from the GIN match: the folded terms make that one user's
postings); the average length is the index's tokens over N. N and the tokens are kept in
``lexical_totals`` by a trigger in the same transaction as every document change, spread
over 16 rows per index so concurrent writers rarely wait on one row. Limits of ``tsvector``:
a term keeps at most 256 positions per document and positions stop at 16383, so a term
repeated more than 256 times in one memory counts 256 times (memories are far shorter).

The documents are written by the store's write paths (``write_doc``) in the transaction of
the row; archiving moves a document between the two indexes by a trigger on
``memories.archived_at``; deleting a memory deletes its document (foreign key cascade).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.store.analyzer import date_terms, query_terms, terms
from gateway.store.postgres.rows import Conn, fetch_all, fetch_one, filter_conditions
from gateway.store.sqlite.lexical import LexicalKey

K1, B = 1.2, 0.75
LABELS = ("A", "B", "C")  # text, date, context
MAX_POSITION = 16383


@dataclass
class Lexicon:
    """The store's user key and whether writes keep the index (``MEMORY_LEXICAL_INDEX``)."""

    key: LexicalKey = field(default_factory=LexicalKey)
    maintained: bool = True

    async def load(self, conn: Conn) -> None:
        """Take the store's secret, making one on first open."""
        row = await fetch_one(conn, "SELECT secret FROM store_secret WHERE id = 1")
        if row is None:
            await conn.execute("INSERT INTO store_secret (id, secret) VALUES (1, %s) "
                               "ON CONFLICT (id) DO NOTHING", (self.key.fresh(),))
            row = await fetch_one(conn, "SELECT secret FROM store_secret WHERE id = 1")
        assert row is not None
        self.key.secret = bytes(row["secret"])

    def document(self, user_id: str, text: str, speaker: str | None, occurred_at: str,
                 context: str | None) -> tuple[str, int]:
        """(``tsvector`` literal, length in terms) of one memory."""
        folded = self.key.user(user_id)
        said = f"{speaker}: {text}" if speaker is not None else text
        columns = (terms(said), date_terms(occurred_at), terms(context or ""))
        positions: dict[str, list[str]] = {}
        at = 0
        for label, words in zip(LABELS, columns, strict=True):
            for word in words:
                at += 1
                positions.setdefault(folded + word, []).append(
                    f"{min(at, MAX_POSITION)}{label}")
        literal = " ".join(f"'{term}':{','.join(marks)}" for term, marks in positions.items())
        return literal, at

    async def write_doc(self, conn: Conn, memory_id: str, user_id: str, text: str,
                        speaker: str | None, occurred_at: str, context: str | None,
                        archived: bool) -> None:
        """Put (or replace) a memory's document, inside the caller's transaction."""
        if not self.maintained:
            return
        literal, length = self.document(user_id, text, speaker, occurred_at, context)
        await conn.execute(
            "INSERT INTO lexical_docs (memory_id, archived, terms, length) "
            "VALUES (%s, %s, %s::tsvector, %s) ON CONFLICT (memory_id) DO UPDATE SET "
            "archived = excluded.archived, terms = excluded.terms, length = excluded.length",
            (memory_id, archived, literal, length))


async def maintain(conn: Conn, lexicon: Lexicon, on: bool) -> bool:
    """Turn the index on or off; True when it changed. Off: documents and totals emptied.
    On again: every document rebuilt from the memories, in the caller's transaction."""
    row = await fetch_one(conn, "SELECT lexical_maintained FROM store_settings WHERE id = 1 "
                                "FOR UPDATE")
    assert row is not None
    lexicon.maintained = on
    if row["lexical_maintained"] == on:
        return False
    await conn.execute("DELETE FROM lexical_docs")
    await conn.execute("UPDATE lexical_totals SET docs = 0, tokens = 0")
    if on:
        cursor = conn.cursor(name="lexical_rebuild")
        await cursor.execute("SELECT id, user_id, text, speaker, occurred_at, context, "
                             "archived_at FROM memories ORDER BY id")
        batch: list[tuple[Any, ...]] = []
        while rows := await cursor.fetchmany(1000):
            for r in rows:
                literal, length = lexicon.document(r["user_id"], r["text"], r["speaker"],
                                                   r["occurred_at"], r["context"])
                batch.append((r["id"], r["archived_at"] is not None, literal, length))
        await cursor.close()
        async with conn.cursor() as writer:
            await writer.executemany(
                "INSERT INTO lexical_docs (memory_id, archived, terms, length) "
                "VALUES (%s, %s, %s::tsvector, %s)", batch)
    await conn.execute("UPDATE store_settings SET lexical_maintained = %s WHERE id = 1", (on,))
    return True


_SEARCH = """
WITH hit AS (
    SELECT d.memory_id, d.length, u.lexeme,
           sum(CASE w WHEN 'A' THEN 1.0 WHEN 'B' THEN %(date_weight)s
                      ELSE %(context_weight)s END) AS f
    FROM lexical_docs d
    CROSS JOIN LATERAL unnest(d.terms) AS u (lexeme, positions, weights)
    CROSS JOIN LATERAL unnest(u.weights) AS w
    WHERE d.terms @@ %(query)s::tsquery AND d.archived = %(archived)s
      AND u.lexeme = ANY(%(lexemes)s) AND w = ANY(%(labels)s)
    GROUP BY d.memory_id, d.length, u.lexeme
), df AS (
    SELECT lexeme, count(*) AS n FROM hit GROUP BY lexeme
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
    GROUP BY hit.memory_id
)
SELECT s.memory_id, s.score FROM scored s
CROSS JOIN LATERAL (
    SELECT 1 FROM memories m WHERE m.id = s.memory_id AND {where} OFFSET 0) AS kept
ORDER BY s.score DESC, s.memory_id LIMIT %(k)s
"""
# The LATERAL probe (OFFSET 0 keeps the planner from turning it into a join) looks each
# scored memory up by its key: a join would read every memory of the user (their rows lie
# scattered across the table) to keep a few dozen. The search also turns sequential scans off
# for its own transaction: the folded terms are one user's, so the GIN index always wins,
# but without statistics (a fresh or quickly grown table) the planner guesses otherwise.


async def keyword_search(conn: Conn, lexicon: Lexicon, user_id: str, query: str, k: int,
                         filters: Any, *, date_weight: float, archived: bool,
                         context_weight: float) -> list[tuple[str, float]]:
    """(id, BM25 score) best first; see ``Store.keyword_search``."""
    words = query_terms(query)
    if not words or k <= 0:
        return []
    labels = ["A", *(["B"] if date_weight > 0 else []), *(["C"] if context_weight > 0 else [])]
    folded = lexicon.key.user(user_id)
    lexemes = [folded + word for word in words]
    restrict = "".join(labels)
    tsquery = " | ".join(f"'{lexeme}':{restrict}" for lexeme in lexemes)
    where, args = filter_conditions(user_id, filters)
    named = {f"f{i}": value for i, value in enumerate(args)}
    conditions = " AND ".join(where)
    for i in range(len(args)):  # positional marks of the filters -> named ones
        conditions = conditions.replace("%s", f"%(f{i})s", 1)
    await conn.execute("SET LOCAL enable_seqscan = off")
    rows = await fetch_all(conn, _SEARCH.format(where=conditions), {
        "date_weight": date_weight, "context_weight": context_weight, "query": tsquery,
        "archived": archived, "lexemes": lexemes, "labels": labels, "k1": K1, "b": B,
        "k": k, **named})
    return [(row["memory_id"], float(row["score"])) for row in rows]
