"""``agent-memory mcp``: the MCP server for agent hosts (Claude Desktop, IDEs, agent
frameworks), over stdio or streamable HTTP, talking to a running gateway over HTTP.

    agent-memory mcp --user-id alice                    # stdio, for a host that spawns it
    agent-memory mcp --transport http --port 8765       # streamable HTTP at /mcp

Named ``mcp_serve`` (not ``mcp``) so that nothing in the repository shadows the SDK's package.
The SDK loads only when the command runs.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer


def command(
        transport: Annotated[str, typer.Option(
            help="stdio (the host spawns this command) or http (streamable HTTP at /mcp)",
            )] = "stdio",
        host: Annotated[str, typer.Option(help="HTTP transport: address to listen on")]
        = "127.0.0.1",
        port: Annotated[int, typer.Option(help="HTTP transport: port")] = 8765,
        url: Annotated[str, typer.Option(envvar="MEMORY_MCP_URL", help="the gateway's URL")]
        = "http://127.0.0.1:8080",
        api_key: Annotated[str | None, typer.Option(
            envvar="MEMORY_API_KEY", help="API key sent to the gateway (over HTTP, a "
                                          "request's Authorization: Bearer header wins)")]
        = None,
        user_id: Annotated[str | None, typer.Option(
            envvar="MEMORY_MCP_USER_ID", help="user of a tool call that names none")] = None,
        agent_id: Annotated[str | None, typer.Option(
            envvar="MEMORY_MCP_AGENT_ID", help="agent that new memories are filed under")]
        = None) -> None:
    """Run the MCP server (memory tools for agent hosts) until the host closes it."""
    if transport not in ("stdio", "http"):
        raise typer.BadParameter("stdio or http", param_hint="--transport")
    from gateway.mcp_server.server import McpConfig, run

    chosen: Literal["stdio", "http"] = "stdio" if transport == "stdio" else "http"
    run(McpConfig(url=url, api_key=api_key, user_id=user_id, agent_id=agent_id), chosen,
        host=host, port=port)
