"""The MCP server (``agent-memory mcp``) driven by the SDK's own client, over stdio (the
command spawned as a host would) and over streamable HTTP, against a real gateway on a real
Triton: the tools and their schemas, add then search, tenant scoping by key, errors as tool
errors with the service's detail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from agent_memory import AsyncMemoryClient, NotFoundError
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from support.servers import LiveGateway, free_ports, serving, settings_for
from support.waiting import wait_for

from gateway.auth.principal import KeyScope
from gateway.triton import TritonServer

ROOT = Path(__file__).resolve().parents[2]
# The worktree's gateway and client packages, whichever is installed in the environment.
PYTHONPATH = os.pathsep.join([str(ROOT), str(ROOT / "client")])
TOOLS = {"add_memory", "add_conversation", "search_memories", "list_memories", "get_memory",
         "update_memory", "delete_memory", "memory_history"}


@pytest.fixture(scope="module")
def live_gateway(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[LiveGateway]:
    [port] = free_ports(1)
    settings = settings_for(triton, tmp_path_factory.mktemp("mcp-data"), auth="required",
                            port=port)
    with serving(settings, log_config=None, log_level=None) as url:
        yield LiveGateway(url, settings)


@asynccontextmanager
async def stdio_session(gateway: LiveGateway, key: str, user_id: str = "alice"
                        ) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=sys.executable, cwd=str(ROOT),
        args=["-m", "gateway.cli", "mcp", "--transport", "stdio", "--url", gateway.url,
              "--user-id", user_id],
        env={"MEMORY_API_KEY": key, "PYTHONPATH": PYTHONPATH})
    async with Client(params) as client:
        yield client


async def call(client: Client, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    [content] = result.content
    return json.loads(content.text)  # type: ignore[union-attr]


async def failure(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    [content] = result.content
    return content.text  # type: ignore[union-attr]


def test_tools_are_listed_with_descriptions_and_input_schemas(live_gateway: LiveGateway) -> None:
    async def scenario() -> None:
        async with stdio_session(live_gateway, live_gateway.key("listing")) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and tool.input_schema["type"] == "object"
        search = tools["search_memories"].input_schema
        assert search["required"] == ["query"]
        assert {"query", "limit", "mode", "filters", "user_id"} <= set(search["properties"])
        assert tools["add_memory"].input_schema["required"] == ["text"]
        assert tools["get_memory"].input_schema["required"] == ["memory_id"]

    anyio.run(scenario)


def test_add_search_update_history_delete_over_stdio(live_gateway: LiveGateway) -> None:
    async def scenario() -> None:
        async with stdio_session(live_gateway, live_gateway.key("stdio")) as client:
            added = await call(client, "add_memory", text="Alice prefers window seats on "
                               "long flights", metadata={"topic": "travel"})
            assert added["text"].startswith("Alice prefers window seats")
            assert added["metadata"] == {"topic": "travel"} and added["created_at"]
            await call(client, "add_memory", text="Alice is allergic to peanuts")
            found = await call(client, "search_memories", query="seating on planes", limit=2)
            assert found["results"][0]["id"] == added["id"]
            assert isinstance(found["results"][0]["score"], float)
            keyword = await call(client, "search_memories", query="peanuts", mode="keyword",
                                 filters={"metadata": {"topic": "travel"}})
            assert keyword["results"] == []  # the peanut memory is not tagged travel
            listed = await call(client, "list_memories", limit=10)
            assert {m["id"] for m in listed["results"]} >= {added["id"]}
            assert len(listed["results"]) == 2
            fixed = await call(client, "update_memory", memory_id=added["id"],
                               text="Alice prefers aisle seats on long flights")
            assert fixed["text"].startswith("Alice prefers aisle")
            got = await call(client, "get_memory", memory_id=added["id"])
            assert got["text"] == fixed["text"]
            history = await call(client, "memory_history", memory_id=added["id"])
            assert [e["event"] for e in history["results"]] == ["ADD", "UPDATE"]
            assert await call(client, "delete_memory", memory_id=added["id"]) == \
                {"deleted": added["id"]}
            assert "404" in await failure(client, "get_memory", memory_id=added["id"])

    anyio.run(scenario)


def test_a_conversation_becomes_memories_found_by_their_neighbours(
        live_gateway: LiveGateway) -> None:
    async def scenario() -> None:
        async with stdio_session(live_gateway, live_gateway.key("talk")) as client:
            stored = await call(client, "add_conversation", messages=[
                {"role": "user", "content": "Should we book the cabin at Lake Tahoe?",
                 "name": "Maya"},
                {"role": "assistant", "content": "Yes, for the second week of July!"},
                {"role": "user", "content": "   "}])  # empty: not a memory
            assert len(stored["results"]) == 2
            # the short reply names no lake; its neighbour does (conversation context)
            found = await call(client, "search_memories", query="Tahoe", mode="keyword")
            assert {h["id"] for h in found["results"]} == {m["id"] for m in stored["results"]}
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            schema = tools["add_conversation"].input_schema["properties"]["messages"]
            assert schema["maxItems"] == 200  # the gateway's bound, advertised
            too_many = [{"role": "user", "content": f"m{i}"} for i in range(201)]
            assert "200" in await failure(client, "add_conversation", messages=too_many)

    anyio.run(scenario)


def test_a_key_acts_only_inside_its_tenant(live_gateway: LiveGateway) -> None:
    async def scenario() -> None:
        async with stdio_session(live_gateway, live_gateway.key("tenant-a")) as a:
            mine = await call(a, "add_memory", text="the vault code is 4711")
        async with stdio_session(live_gateway, live_gateway.key("tenant-b")) as b:
            # the same user id names another tenant's user: nothing of tenant A is seen
            assert (await call(b, "search_memories", query="vault code"))["results"] == []
            assert (await call(b, "list_memories"))["results"] == []
            assert "404" in await failure(b, "get_memory", memory_id=mine["id"])
            assert "404" in await failure(b, "delete_memory", memory_id=mine["id"])
        async with stdio_session(live_gateway, live_gateway.key("tenant-a")) as a:
            assert (await call(a, "get_memory", memory_id=mine["id"]))["id"] == mine["id"]

    anyio.run(scenario)


def test_errors_are_tool_errors_with_the_service_detail(live_gateway: LiveGateway) -> None:
    key = live_gateway.key("errors")
    unknown = str(uuid.uuid4())

    async def scenario() -> None:
        async with AsyncMemoryClient(live_gateway.url, api_key=key) as direct:
            with pytest.raises(NotFoundError) as missing:
                await direct.get(unknown)
        async with stdio_session(live_gateway, key) as client:
            text = await failure(client, "get_memory", memory_id=unknown)
            assert text.endswith(f"404: {missing.value.detail}")
            assert "must be a UUID" in await failure(client, "memory_history",
                                                     memory_id="not-an-id")
            invalid = await failure(client, "add_memory", text="   ")
            assert "422" in invalid
            refused = await failure(client, "search_memories", query="x", limit=500)
            assert "limit" in refused  # the tool's own schema: at most 50
        async with stdio_session(live_gateway, live_gateway.key("errors", KeyScope.READ)
                                 ) as reader:
            assert "403" in await failure(reader, "add_memory", text="a read key cannot write")
            assert (await call(reader, "list_memories"))["results"] == []
        async with stdio_session(live_gateway, "amk_not_a_key") as client:
            assert "401" in await failure(client, "list_memories")
            assert "invalid API key" in await failure(client, "list_memories")

    anyio.run(scenario)


def test_streamable_http_takes_the_key_from_the_bearer_header(live_gateway: LiveGateway
                                                              ) -> None:
    [port] = free_ports(1)
    server = subprocess.Popen(  # no key configured: each request brings its own
        [sys.executable, "-m", "gateway.cli", "mcp", "--transport", "http", "--port", str(port),
         "--url", live_gateway.url, "--user-id", "bob"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": PYTHONPATH, "MEMORY_API_KEY": ""})
    url = f"http://127.0.0.1:{port}/mcp"

    def session(key: str) -> Client:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
        return Client(streamable_http_client(url, http_client=http))

    async def scenario() -> None:
        key_a, key_b = live_gateway.key("http-a"), live_gateway.key("http-b")
        async with session(key_a) as client:
            assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
            added = await call(client, "add_memory", text="Bob's cat is called Miso")
            found = await call(client, "search_memories", query="pet's name")
            assert found["results"][0]["id"] == added["id"]
        async with session(key_b) as other:
            assert (await call(other, "search_memories", query="pet's name"))["results"] == []
            assert "404" in await failure(other, "get_memory", memory_id=added["id"])

    try:
        wait_for(lambda: _listening(port), timeout_s=60, what="the MCP HTTP server")
        anyio.run(scenario)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
