"""How many memories the store holds per user, read on a reader thread (never the writer's
queue): for the size trigger (a few users) and the store gauges (every user)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.store.sqlite import Store

MAX_USERS_PER_QUERY = 500  # SQLite host parameters per IN (...) list


@dataclass(frozen=True, slots=True)
class Census:
    users: int  # users with at least one stored memory
    memories: int  # stored memories (archived ones included)
    per_user: dict[float, float]  # quantile (over users) -> memories of that user


async def user_counts(store: Store, users: list[str]) -> dict[str, int]:
    """Stored memories of each given user (users without any are left out)."""

    def work() -> dict[str, int]:
        counts: dict[str, int] = {}
        for start in range(0, len(users), MAX_USERS_PER_QUERY):
            chunk = users[start:start + MAX_USERS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            rows = store.conn.execute(
                f"SELECT user_id, count(*) FROM memories WHERE user_id IN ({marks}) "
                "GROUP BY user_id", chunk)
            counts.update({r[0]: r[1] for r in rows})
        return counts

    return await store.read(work)


async def census(store: Store, quantiles: tuple[float, ...]) -> Census:
    """Every user's count, from the (user_id, id) index: one pass, no table rows read; the
    quantiles are worked out on the reader thread too."""

    def work() -> Census:
        rows = store.conn.execute("SELECT count(*) FROM memories GROUP BY user_id").fetchall()
        counts = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        per_user = {q: float(np.quantile(counts, q)) if len(counts) else 0.0
                    for q in quantiles}
        return Census(users=len(counts), memories=int(counts.sum()), per_user=per_user)

    return await store.read(work)
