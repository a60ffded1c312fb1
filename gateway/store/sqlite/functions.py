"""SQL functions every connection of the store registers before it reads or writes.

The exact-duplicate index (migration 4) calls ``memory_text_key``; the lexical triggers call
``lexical_body`` and ``lexical_when``. A connection without them cannot write memories at all,
which is safer than an index silently out of step.
"""

from __future__ import annotations

import sqlite3

from gateway.domain.normalise import text_key
from gateway.store.sqlite import lexical

TEXT_KEY_FUNCTION = "memory_text_key"  # the SQL function behind the exact-duplicate index


def install(conn: sqlite3.Connection,
            key: lexical.LexicalKey | None = None) -> lexical.LexicalKey:
    """Register the text key (deterministic, so SQLite may index it) and the lexical
    functions (salted by ``key``, else by the secret stored in the database) on ``conn``."""
    conn.create_function(TEXT_KEY_FUNCTION, 1, text_key, deterministic=True)
    return lexical.install(conn, key)
