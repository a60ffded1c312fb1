"""The lexical (keyword) index in PostgreSQL: the project's analyser, a ``tsvector`` per
memory and the postings kept from it, ranked by BM25 the way SQLite's FTS5 ranks, so both
backends rank alike.

PostgreSQL's own parsers and dictionaries never see the text: ``gateway.store.analyzer``
makes the terms (as for SQLite), each is prefixed with the salted user key (``LexicalKey``,
the same scheme and reason as ``gateway.store.sqlite.lexical``: a user's search walks only
that user's postings) and written as a ``tsvector`` literal whose positions carry the column
in their weight label: A the text (after the speaker's name), B the date, C the conversation
context. A trigger keeps a postings table from these documents, which a search reads
(``postings``).

BM25 as FTS5's ``bm25()``: k1 = 1.2, b = 0.75; a term's frequency in a document is the sum
of its column weights over its positions; idf = ln((N - n + 0.5) / (n + 0.5)), 1e-6 where
that is not positive, with N the documents of the index (live or archive) and n those that
match the term (computed per query from the term's postings: the folded terms make that one
user's); the average length is the index's tokens over N. N and the tokens are kept in
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

from gateway.store.analyzer import date_terms, terms
from gateway.store.postgres.rows import Conn, fetch_one
from gateway.store.sqlite.lexical import LexicalKey

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
