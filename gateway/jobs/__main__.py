"""``python -m gateway.jobs``: start and list consolidation jobs of a running gateway.

    python -m gateway.jobs run merge                 # every user (admin key), follow to the end
    python -m gateway.jobs run merge --user-id alice # one user
    python -m gateway.jobs list

The gateway does the work (it owns the index); this CLI asks it over HTTP, with
``MEMORY_API_KEY`` when keys are required.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from gateway.settings import Settings

app = typer.Typer(help="Consolidation jobs of a running gateway: run, list.",
                  no_args_is_help=True, add_completion=False)
console = Console(stderr=True)
UrlOption = Annotated[str | None, typer.Option(help="gateway URL (default from settings)")]
POLL_S = 0.5


def _client(url: str | None) -> httpx.Client:
    settings = Settings()
    base = url or f"http://{settings.host}:{settings.port}"
    key = settings.api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else None
    return httpx.Client(base_url=base, timeout=60, headers=headers)


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
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


@app.command()
def run(kind: Annotated[str, typer.Argument(help="job kind: merge")],
        user_id: Annotated[str | None, typer.Option(help="one user (default: every user)")] = None,
        wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = True,
        url: UrlOption = None) -> None:
    """Start a job; with --wait (default) show its progress until it ends."""
    with _client(url) as client:
        job = _call(client, "POST", "/v1/jobs", json={"kind": kind, "user_id": user_id})
        console.print(f"job {job['id']} {job['status']}")
        while wait and job["status"] in ("queued", "running"):
            time.sleep(POLL_S)
            job = _call(client, "GET", f"/v1/jobs/{job['id']}")
            console.print(f"  {job['status']}: {job['progress']}", highlight=False)
        typer.echo(job["status"])
        if job["status"] == "failed":
            console.print(f"[red]{job['error']}[/red]")
            raise typer.Exit(1)


@app.command(name="list")
def list_jobs(limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
              url: UrlOption = None) -> None:
    """The most recent jobs (admin key)."""
    with _client(url) as client:
        jobs = _call(client, "GET", "/v1/jobs", params={"limit": limit})
    table = Table("id", "kind", "user", "status", "attempts", "progress", "created")
    for job in jobs:
        table.add_row(job["id"], job["kind"], job["user_id"] or "(all)", job["status"],
                      str(job["attempts"]), str(job["progress"]), job["created_at"])
    Console().print(table)


if __name__ == "__main__":
    app()
