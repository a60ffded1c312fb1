"""Per-term statistics of the live lexical index, kept in step by triggers (migration 13).

Why: FTS5's ``bm25()`` ranks every posting of every query term, so a keyword search costs
what the user's postings cost (``gateway.store.sqlite.pruned`` measures it). Pruning needs, per
folded term (user key + stem), what FTS5 does not expose cheaply:

- ``docs``: how many live memories hold the term in any column, BM25's n(q) (FTS5 counts it
  by walking the term's whole posting list on every query);
- an upper bound on one memory's contribution for that term: the most hits of the term in one
  memory's text, date and context (``body``, ``occurred``, ``context``) and the fewest terms in
  a memory holding it (``shortest``). Bounds only widen (a delete leaves them as they are), so
  they stay bounds; ``docs`` is exact.

A row whose ``docs`` falls to 0 is deleted, so an erased memory's terms leave this table with
its postings. Only the live index has statistics: archive search ranks with FTS5 alone.
"""

from __future__ import annotations

import json
from collections import Counter

from gateway.store.analyzer import date_terms, terms

TABLE = "lexical_terms"
TRIGGERS = ("memories_lexical_terms_insert", "memories_lexical_terms_delete",
            "memories_lexical_terms_update", "memories_lexical_terms_archive",
            "memories_lexical_terms_restore")
FUNCTION = "lexical_term_stats"


def term_stats(key: str, said: str, occurred_at: str, context: str | None) -> str:
    """JSON ``[[folded term, body hits, date hits, context hits, memory size], ...]``, one per
    distinct term of one memory (``key`` is its user's lexical key). Same analysis as the
    index's columns (``lexical.LexicalKey.body_terms`` / ``when_terms``)."""
    columns = (terms(said), date_terms(occurred_at), terms(context or ""))
    size = sum(len(column) for column in columns)
    counts = [Counter(column) for column in columns]
    distinct = dict.fromkeys(word for column in columns for word in column)
    return json.dumps([[key + word, *(c[word] for c in counts), size] for word in distinct])


def _said(row: str) -> str:  # as lexical.said: the text after its speaker's name
    return f"coalesce({row}.speaker || ': ', '') || {row}.text"


def _values(row: str) -> str:
    return (f"json_each({FUNCTION}(lexical_user({row}.user_id), {_said(row)}, "
            f"{row}.occurred_at, {row}.context))")


def _add(row: str) -> str:
    return f"""
    INSERT INTO {TABLE} (term, docs, body, occurred, context, shortest)
    SELECT value ->> 0, 1, value ->> 1, value ->> 2, value ->> 3, value ->> 4
    FROM {_values(row)} WHERE true
    ON CONFLICT (term) DO UPDATE SET docs = docs + 1, body = max(body, excluded.body),
        occurred = max(occurred, excluded.occurred), context = max(context, excluded.context),
        shortest = min(shortest, excluded.shortest);"""


def _remove(row: str) -> str:
    terms_of = f"(SELECT value ->> 0 FROM {_values(row)})"
    return f"""
    UPDATE {TABLE} SET docs = docs - 1 WHERE term IN {terms_of};
    DELETE FROM {TABLE} WHERE docs <= 0 AND term IN {terms_of};"""


# The live index holds every memory whose ``archived_at`` is NULL (see ``lexical``): every
# insert, and the rows the archive/restore triggers move.
TRIGGER_SQL = f"""
CREATE TRIGGER {TRIGGERS[0]} AFTER INSERT ON memories BEGIN{_add('new')}
END;
CREATE TRIGGER {TRIGGERS[1]} AFTER DELETE ON memories
WHEN old.archived_at IS NULL BEGIN{_remove('old')}
END;
CREATE TRIGGER {TRIGGERS[2]}
AFTER UPDATE OF user_id, text, occurred_at, context, speaker ON memories
WHEN old.archived_at IS NULL AND new.archived_at IS NULL BEGIN{_remove('old')}{_add('new')}
END;
CREATE TRIGGER {TRIGGERS[3]} AFTER UPDATE OF archived_at ON memories
WHEN old.archived_at IS NULL AND new.archived_at IS NOT NULL BEGIN{_remove('old')}
END;
CREATE TRIGGER {TRIGGERS[4]} AFTER UPDATE OF archived_at ON memories
WHEN old.archived_at IS NOT NULL AND new.archived_at IS NULL BEGIN{_add('new')}
END;
"""

CLEARED = f"DELETE FROM {TABLE};\n"

REFILLED = f"""
INSERT INTO {TABLE} (term, docs, body, occurred, context, shortest)
SELECT value ->> 0, count(*), max(value ->> 1), max(value ->> 2), max(value ->> 3),
       min(value ->> 4)
FROM memories m, {_values('m')} WHERE m.archived_at IS NULL GROUP BY value ->> 0;
"""

# Migration 12: the table, filled from the live memories, and its triggers.
SCHEMA = f"""
CREATE TABLE {TABLE} (
    term     TEXT PRIMARY KEY,
    docs     INTEGER NOT NULL,
    body     INTEGER NOT NULL,
    occurred INTEGER NOT NULL,
    context  INTEGER NOT NULL,
    shortest INTEGER NOT NULL
) WITHOUT ROWID;
""" + REFILLED + TRIGGER_SQL
