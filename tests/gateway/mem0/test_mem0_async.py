"""mem0ai's AsyncMemoryClient against a running gateway: the same routes over httpx's async
client, plus its handshake quirk (a blocking ``requests`` ping built by concatenation, so a
host ending in "/" asks for ``//v1/ping/``)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from mem0.client.main import AsyncMemoryClient
from mem0.exceptions import MemoryError as Mem0Error
from mem0.exceptions import MemoryNotFoundError, ValidationError


def test_async_client_every_memory_method(gateway_url: str) -> None:
    asyncio.run(_every_method(gateway_url))


async def _every_method(gateway_url: str) -> None:
    client = AsyncMemoryClient(api_key="k", host=gateway_url + "/")  # -> GET //v1/ping/
    assert (client.org_id, client.project_id) == ("default", "default")
    user, agent = f"async-{uuid.uuid4().hex[:8]}", f"agent-{uuid.uuid4().hex[:8]}"

    added = await asyncio.gather(
        client.add("I love hiking in the Alps", user_id=user, agent_id=agent),
        client.add("My favourite dish is spaghetti carbonara", user_id=user),
        client.add("Deploys happen on Tuesdays", agent_id=agent),
    )
    hiking_id, food_id, _ = (a["results"][0]["id"] for a in added)

    top = (await client.search("mountain walks", filters={"user_id": user}))["results"][0]
    assert top["id"] == hiking_id and isinstance(top["score"], float)
    listed = await client.get_all(filters={"agent_id": agent}, page=1, page_size=10)
    assert listed["count"] == 2
    assert (await client.get(food_id))["memory"] == "My favourite dish is spaghetti carbonara"

    await client.update(food_id, text="My favourite dish is risotto")
    history = await client.history(food_id)
    assert [h["event"] for h in history] == ["ADD", "UPDATE"]

    await client.batch_update([{"memory_id": food_id, "metadata": {"checked": True}}])
    assert (await client.get(food_id))["metadata"] == {"checked": True}
    await client.batch_delete([{"memory_id": food_id}])
    with pytest.raises(MemoryNotFoundError):
        await client.get(food_id)

    entities = {(e["type"], e["name"]) for e in (await client.users())["results"]}
    assert {("user", user), ("agent", agent)} <= entities
    await client.delete(hiking_id)
    await client.delete_all(agent_id=agent)
    assert (await client.get_all(filters={"OR": [{"user_id": user}, {"agent_id": agent}]})
            )["count"] == 0
    await client.delete_users(user_id=user)

    with pytest.raises(ValidationError):
        await client.search("x", filters={"user_id": user, "NOT": []})
    with pytest.raises(Mem0Error) as refused:
        await client.get_summary()
    assert refused.value.error_code == "HTTP_501"
    await client.async_client.aclose()
