"""The MCP tools and how the server runs (stdio or streamable HTTP).

Every tool is one call of ``AsyncMemoryClient``: the gateway keeps every rule (keys, tenants,
limits); the tools only shape the answer for a model's context (id, text, score, dates) and
turn the client's errors into MCP tool errors that carry the service's ``detail``.

Who is who: the API key and the default user and agent come from the configuration
(``McpConfig``); over streamable HTTP, an ``Authorization: Bearer <key>`` header of the MCP
request takes the place of the configured key for that call. Either way the gateway scopes the
call to that key's tenant.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio
from agent_memory import APIStatusError, AsyncMemoryClient, MemoryServiceError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

Transport = Literal["stdio", "http"]
Mode = Literal["hybrid", "semantic", "keyword"]
INSTRUCTIONS = (
    "Long-term memory for this user. Search it before answering questions about the user's "
    "preferences, history or facts they told you; add a memory when they tell you something "
    "worth remembering; update or delete a memory that is wrong or that they ask to forget.")


@dataclass(frozen=True)
class McpConfig:
    url: str = "http://127.0.0.1:8080"
    api_key: str | None = None
    user_id: str | None = None
    agent_id: str | None = None
    timeout_s: float = 30.0


class Clients:
    """The client for the configured key (one connection pool, kept), and a short-lived one
    for a call that brings its own key in an HTTP header."""

    def __init__(self, config: McpConfig) -> None:
        self.config = config
        self._configured: AsyncMemoryClient | None = None

    @asynccontextmanager
    async def for_call(self, ctx: Context | None) -> AsyncIterator[AsyncMemoryClient]:
        key = bearer(ctx.headers if ctx is not None else None)
        if key is not None and key != self.config.api_key:
            async with AsyncMemoryClient(self.config.url, api_key=key,
                                         timeout=self.config.timeout_s) as client:
                yield client
            return
        if self._configured is None:
            self._configured = AsyncMemoryClient(self.config.url, api_key=self.config.api_key,
                                                 timeout=self.config.timeout_s)
        yield self._configured

    async def aclose(self) -> None:
        if self._configured is not None:
            await self._configured.close()


def bearer(headers: Mapping[str, str] | None) -> str | None:
    """The key of an ``Authorization: Bearer`` header (HTTP transport only; stdio has none)."""
    value = (headers or {}).get("authorization", "")
    scheme, _, key = value.partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


@asynccontextmanager
async def tool_errors() -> AsyncIterator[None]:
    """The client's errors as tool errors the model can read: status and the service's detail."""
    try:
        yield
    except APIStatusError as exc:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        raise ToolError(f"{exc.status_code}: {detail}") from exc
    except MemoryServiceError as exc:
        raise ToolError(f"memory service unavailable: {exc}") from exc


def brief(memory: Mapping[str, Any]) -> dict[str, Any]:
    """A memory sized for a model's context: id, text, dates, and what it was filed under."""
    out: dict[str, Any] = {"id": memory["id"], "text": memory["text"]}
    if "score" in memory:
        out["score"] = round(float(memory["score"]), 4)
    out["created_at"] = memory.get("created_at")
    if memory.get("occurred_at") and memory.get("occurred_at") != memory.get("created_at"):
        out["occurred_at"] = memory["occurred_at"]
    for name in ("agent_id", "run_id"):
        if memory.get(name):
            out[name] = memory[name]
    if memory.get("metadata"):
        out["metadata"] = memory["metadata"]
    return out


MAX_CONVERSATION_MESSAGES = 200  # the gateway's own bound per request (MAX_MESSAGES)


class ConversationMessage(BaseModel):
    role: Annotated[str, Field(description="who spoke: user, assistant, ...")]
    content: Annotated[str, Field(description="what was said")]
    name: Annotated[str | None, Field(description="the speaker's name, if known")] = None
    timestamp: Annotated[str | None, Field(description="when it was said, ISO 8601")] = None


UserId = Annotated[str | None, Field(description="whose memory (default: the configured user)")]
MemoryId = Annotated[str, Field(description="the memory's id, as returned by add or search")]


def build_server(config: McpConfig) -> tuple[MCPServer, Clients]:
    server: MCPServer = MCPServer("agent-memory", instructions=INSTRUCTIONS)
    clients = Clients(config)

    def user(user_id: str | None) -> str:
        chosen = user_id or config.user_id
        if not chosen:
            raise ToolError("no user_id: pass one, or start the server with --user-id")
        return chosen

    @server.tool()
    async def add_memory(
            text: Annotated[str, Field(description="the fact to remember, in one sentence")],
            metadata: Annotated[dict[str, Any] | None,
                                Field(description="optional key/value tags")] = None,
            user_id: UserId = None,
            agent_id: Annotated[str | None, Field(description="the agent it belongs to "
                                                  "(default: the configured agent)")] = None,
            ctx: Context | None = None) -> dict[str, Any]:
        """Remember a fact about the user. Returns the stored memory (an exact or near
        duplicate of an existing one updates that one instead)."""
        async with tool_errors(), clients.for_call(ctx) as client:
            return brief(await client.add(user(user_id), {**(metadata or {}), "text": text},
                                          agent_id=agent_id or config.agent_id))

    @server.tool()
    async def add_conversation(
            messages: Annotated[list[ConversationMessage], Field(
                min_length=1, max_length=MAX_CONVERSATION_MESSAGES,
                description="the conversation, oldest first")],
            infer: Annotated[bool | None, Field(
                description="true: the service's LLM extracts the facts worth keeping "
                            "(needs one configured); default: every message is kept as "
                            "said, searchable with its neighbours")] = None,
            user_id: UserId = None,
            agent_id: Annotated[str | None, Field(description="the agent it belongs to "
                                                  "(default: the configured agent)")] = None,
            ctx: Context | None = None) -> dict[str, Any]:
        """Remember a conversation (or its latest turns). Returns the memories it wrote."""
        async with tool_errors(), clients.for_call(ctx) as client:
            stored = await client.add_messages(
                user(user_id), [m.model_dump(exclude_none=True) for m in messages],
                agent_id=agent_id or config.agent_id, infer=infer)
            return {"results": [brief(memory) for memory in stored]}

    @server.tool()
    async def search_memories(
            query: Annotated[str, Field(description="what to look for, in natural language")],
            limit: Annotated[int, Field(ge=1, le=50, description="at most this many")] = 5,
            mode: Annotated[Mode | None, Field(description="hybrid (meaning and words), "
                                               "semantic or keyword; default: the "
                                               "service's")] = None,
            filters: Annotated[dict[str, Any] | None, Field(
                description="optional: agent_id, run_id, metadata (exact key/value "
                            "matches), created_after, created_before (ISO 8601)")] = None,
            user_id: UserId = None,
            ctx: Context | None = None) -> dict[str, Any]:
        """Search the user's memories by meaning and words, best first, each with its score
        (higher is better)."""
        async with tool_errors(), clients.for_call(ctx) as client:
            hits = await client.search(user(user_id), query, limit, filters, mode=mode)
            return {"results": [brief(hit) for hit in hits]}

    @server.tool()
    async def list_memories(
            limit: Annotated[int, Field(ge=1, le=100, description="at most this many")] = 20,
            user_id: UserId = None,
            ctx: Context | None = None) -> dict[str, Any]:
        """List the user's memories, newest first."""
        async with tool_errors(), clients.for_call(ctx) as client:
            pages = client.list(user(user_id), page_size=limit)
            return {"results": [brief(memory) async for memory in _first(pages, limit)]}

    @server.tool()
    async def get_memory(memory_id: MemoryId, ctx: Context | None = None) -> dict[str, Any]:
        """One memory by its id."""
        async with tool_errors(), clients.for_call(ctx) as client:
            return brief(await client.get(memory_id))

    @server.tool()
    async def update_memory(
            memory_id: MemoryId,
            text: Annotated[str | None, Field(description="the corrected text")] = None,
            metadata: Annotated[dict[str, Any] | None,
                                Field(description="replaces its tags")] = None,
            ctx: Context | None = None) -> dict[str, Any]:
        """Correct a memory: new text and/or tags (its history keeps the old version)."""
        async with tool_errors(), clients.for_call(ctx) as client:
            return brief(await client.update(memory_id, text=text, metadata=metadata))

    @server.tool()
    async def delete_memory(memory_id: MemoryId, ctx: Context | None = None) -> dict[str, Any]:
        """Forget a memory (for a wrong one, or when the user asks)."""
        async with tool_errors(), clients.for_call(ctx) as client:
            await client.delete(memory_id)
            return {"deleted": memory_id}

    @server.tool()
    async def memory_history(memory_id: MemoryId,
                             ctx: Context | None = None) -> dict[str, Any]:
        """How a memory changed: its ADD, UPDATE and DELETE events, oldest first."""
        async with tool_errors(), clients.for_call(ctx) as client:
            events = await client.history(memory_id)
            return {"results": [{"event": e["event"], "old_text": e["old_text"],
                                 "new_text": e["new_text"], "at": e["at"]} for e in events]}

    return server, clients


async def _first(items: AsyncIterator[Any], count: int) -> AsyncIterator[Any]:
    n = 0
    async for item in items:
        if n >= count:
            break
        n += 1
        yield item


def run(config: McpConfig, transport: Transport, host: str = "127.0.0.1",
        port: int = 8765) -> None:
    """Serve until the host closes stdin (stdio) or Ctrl-C (HTTP, at ``/mcp``)."""
    server, clients = build_server(config)

    async def main() -> None:
        try:
            if transport == "stdio":
                await server.run_stdio_async()
            else:
                await server.run_streamable_http_async(host=host, port=port)
        finally:
            await clients.aclose()

    anyio.run(main)
