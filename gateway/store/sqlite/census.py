"""Who has memories, counted from the (user_id, id) index without reading table rows: per
user (the size trigger, the store gauges) and per (user, agent, run, tag) population (listing
entities, fanning a query out over several users)."""

from __future__ import annotations

import sqlite3

import numpy as np

from gateway.store.sqlite.rows import in_chunks
from gateway.store.types import Census, Population


def user_counts(conn: sqlite3.Connection, users: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for marks, chunk in in_chunks(users):
        rows = conn.execute(f"SELECT user_id, count(*) FROM memories WHERE user_id IN ({marks}) "
                            "GROUP BY user_id", chunk)
        counts.update({r[0]: r[1] for r in rows})
    return counts


def census(conn: sqlite3.Connection, quantiles: tuple[float, ...]) -> Census:
    rows = conn.execute("SELECT count(*) FROM memories GROUP BY user_id").fetchall()
    counts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    per_user = {q: float(np.quantile(counts, q)) if len(counts) else 0.0 for q in quantiles}
    return Census(users=len(counts), memories=int(counts.sum()), per_user=per_user)


def populations(conn: sqlite3.Connection, tag_key: str, user_prefix: str = "",
                without: str | None = None) -> list[Population]:
    """The populations of the users under ``user_prefix``: a range on the user_id index, so
    other tenants' rows are neither read nor parsed (``without`` is checked on the index key,
    before the row and its metadata are read)."""
    where, args = ["(? IS NULL OR instr(m.user_id, ?) = 0)"], [without, without]
    if user_prefix:
        where.append("m.user_id >= ? AND m.user_id < ?")
        args += [user_prefix, _after_prefix(user_prefix)]
    return [Population(*row) for row in conn.execute(
        "SELECT m.user_id, m.agent_id, m.run_id, "
        "(SELECT j.value FROM json_each(m.metadata) j WHERE j.key = ?) AS tag, count(*) "
        f"FROM memories m WHERE {' AND '.join(where)} GROUP BY 1, 2, 3, 4",
        (tag_key, *args))]


def _after_prefix(prefix: str) -> str:
    """The least text greater than every text that starts with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
