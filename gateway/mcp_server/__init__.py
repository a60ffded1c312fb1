"""The MCP server (``agent-memory mcp``): memory tools for agent hosts over the Model Context
Protocol, each one call of the ``agent_memory`` client against a running gateway over HTTP.

Not named ``mcp``: that is the SDK's package. Imports nothing of the gateway's layers (a
checked contract): it works against a remote deployment as well as a local one.
"""
