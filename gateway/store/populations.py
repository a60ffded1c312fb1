"""Who has memories: the distinct (user, agent, run, tag) groups of the store, with counts.

Listing entities and fanning a query out over several users both need to know which
populations exist without reading every memory; one grouped scan answers both.
"""

from __future__ import annotations

from typing import NamedTuple

from gateway.store.sqlite import Store


class Population(NamedTuple):
    user_id: str
    agent_id: str | None
    run_id: str | None
    tag: object  # the value of the metadata key asked for (None when absent)
    memories: int


async def populations(store: Store, tag_key: str) -> list[Population]:
    """Every distinct (user_id, agent_id, run_id, metadata[tag_key]) with its memory count."""
    sql = (
        "SELECT m.user_id, m.agent_id, m.run_id, "
        "(SELECT j.value FROM json_each(m.metadata) j WHERE j.key = ?) AS tag, count(*) "
        "FROM memories m GROUP BY 1, 2, 3, 4"
    )

    def work() -> list[Population]:
        return [Population(*row) for row in store.conn.execute(sql, (tag_key,))]

    return await store.run(work)
