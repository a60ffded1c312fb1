"""Who has memories, counted from the (user_id, id) index: per user and per (user, agent,
run, tag) population (as the SQLite backend's ``census``)."""

from __future__ import annotations

import numpy as np

from gateway.store.postgres.rows import Conn, fetch_all
from gateway.store.types import Census, Population


async def user_counts(conn: Conn, users: list[str]) -> dict[str, int]:
    rows = await fetch_all(conn, "SELECT user_id, count(*) AS n FROM memories "
                           "WHERE user_id = ANY(%s) GROUP BY user_id", (list(users),))
    return {r["user_id"]: int(r["n"]) for r in rows}


async def census(conn: Conn, quantiles: tuple[float, ...]) -> Census:
    rows = await fetch_all(conn, "SELECT count(*) AS n FROM memories GROUP BY user_id")
    counts = np.fromiter((r["n"] for r in rows), dtype=np.int64, count=len(rows))
    per_user = {q: float(np.quantile(counts, q)) if len(counts) else 0.0 for q in quantiles}
    return Census(users=len(counts), memories=int(counts.sum()), per_user=per_user)


async def populations(conn: Conn, tag_key: str, user_prefix: str = "",
                      without: str | None = None) -> list[Population]:
    """The populations of the users under ``user_prefix`` (a range of the user index)."""
    where, args = ["(%s::text IS NULL OR strpos(m.user_id, %s) = 0)"], [without, without]
    if user_prefix:
        where.append("m.user_id >= %s AND m.user_id < %s")
        args += [user_prefix, user_prefix[:-1] + chr(ord(user_prefix[-1]) + 1)]
    rows = await fetch_all(
        conn, "SELECT m.user_id, m.agent_id, m.run_id, m.metadata -> %s AS tag, "
        f"count(*) AS n FROM memories m WHERE {' AND '.join(where)} GROUP BY 1, 2, 3, 4",
        (tag_key, *args))
    return [Population(r["user_id"], r["agent_id"], r["run_id"], r["tag"], int(r["n"]))
            for r in rows]
