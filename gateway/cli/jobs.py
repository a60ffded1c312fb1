"""``agent-memory jobs`` (and ``python -m gateway.jobs``): start and list consolidation jobs
of a running gateway.

    agent-memory jobs run merge                 # every user, follow to the end
    agent-memory jobs run merge --user-id alice # one user
    agent-memory jobs run compress              # fold old, low-priority memories
    agent-memory jobs run expire                # delete memories past expires_at
    agent-memory jobs run prune                 # retention now (operator key)
    agent-memory jobs list [--json]

The gateway does the work (it owns the index); this CLI asks it over HTTP, with
``MEMORY_API_KEY`` when keys are required: with an operator key, "every user" is every
tenant's and ``list`` shows every tenant's jobs; with a tenant's admin key, its own tenant's.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway.cli.http import JsonOption, UrlOption, call, console, gateway_client

app = typer.Typer(help="Consolidation jobs of a running gateway: run, list.",
                  no_args_is_help=True, add_completion=False)
POLL_S = 0.5


@app.command()
def run(kind: Annotated[str, typer.Argument(help="job kind: compress, expire, merge "
                                                  "or prune")],
        user_id: Annotated[str | None, typer.Option(help="one user (default: every user)")] = None,
        wait: Annotated[bool, typer.Option(help="follow the job until it ends")] = True,
        url: UrlOption = None) -> None:
    """Start a job; with --wait (default) show its progress until it ends."""
    with gateway_client(url) as client:
        job = call(client, "POST", "/v1/jobs", json={"kind": kind, "user_id": user_id})
        over = "every tenant" if job["tenant"] is None else f"tenant {job['tenant']}"
        console.print(f"job {job['id']} {job['status']} ({over})")
        while wait and job["status"] in ("queued", "running"):
            time.sleep(POLL_S)
            job = call(client, "GET", f"/v1/jobs/{job['id']}")
            console.print(f"  {job['status']}: {job['progress']}", highlight=False)
        typer.echo(job["status"])
        if job["status"] == "failed":
            console.print(f"[red]{job['error']}[/red]")
            raise typer.Exit(1)


@app.command(name="list")
def list_jobs(limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
              url: UrlOption = None, as_json: JsonOption = False) -> None:
    """The most recent jobs (an admin key: its tenant's; an operator key: every tenant's)."""
    with gateway_client(url) as client:
        jobs = call(client, "GET", "/v1/jobs", params={"limit": limit})
    if as_json:
        print(json.dumps(jobs))
        return
    table = Table("id", "kind", "tenant", "user", "status", "attempts", "progress", "created")
    for job in jobs:
        table.add_row(job["id"], job["kind"], job["tenant"] or "(all)",
                      job["user_id"] or "(all)", job["status"],
                      str(job["attempts"]), str(job["progress"]), job["created_at"])
    Console().print(table)


def main() -> None:
    app()
