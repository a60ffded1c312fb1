"""How the operator CLIs (``agent-memory models``, ``agent-memory jobs``) talk to a running
gateway, and the options they share.

They ask the gateway rather than open the store: it owns the index and the model versions.
Errors end the command with the gateway's ``detail`` on stderr (exit 1), or exit 2 when the
gateway cannot be reached.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from gateway.settings import Settings

console = Console(stderr=True)
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON (for scripts) instead of a "
                                                         "table")]
UrlOption = Annotated[str | None, typer.Option(help="gateway URL (default from settings)")]


def gateway_client(url: str | None) -> httpx.Client:
    """A client for ``url`` (default: the configured host and port), sending
    ``MEMORY_API_KEY`` when one is set: an operator-scope key for ``models`` and for jobs
    over every tenant; a tenant's admin key runs and lists its own tenant's jobs only."""
    settings = Settings()
    base = url or f"http://{settings.host}:{settings.port}"
    key = settings.api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else None
    return httpx.Client(base_url=base, timeout=60, headers=headers)


def call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """The JSON answer, or exit the command with what went wrong."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        console.print(f"[red]cannot reach the gateway at {client.base_url}: {exc}[/red]")
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        detail = response.json().get("detail", response.text) if response.content else ""
        console.print(f"[red]{response.status_code}: {detail}[/red]")
        raise typer.Exit(1)
    return response.json()
