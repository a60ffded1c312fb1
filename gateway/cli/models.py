"""``agent-memory models`` (and ``python -m gateway.models``): operator commands for model
versions, via the admin API.

    agent-memory models list [--json]           # versions on disk, served, active, migration
    agent-memory models activate embedder 2     # start the swap and follow its progress
    agent-memory models activate clip 2         # the same for CLIP (re-embeds every picture)
    agent-memory models reembed [--model clip]  # follow (or resume) a migration to the end
    agent-memory models abandon [--model clip]  # roll a migration back

The running gateway does the work (it owns the index); this CLI asks it and shows progress.
With keys required, ``MEMORY_API_KEY`` must be an operator-scope key
(``agent-memory keys create --tenant ops --scope operator``): model versions are the whole
service's, a tenant's admin key gets 403.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gateway.cli.http import JsonOption, UrlOption, call, console, gateway_client

app = typer.Typer(help="Model versions of a running gateway: list, activate, reembed, abandon.",
                 no_args_is_help=True, add_completion=False)


MIGRATING = ("embedder", "clip")  # the models whose swap re-embeds what is stored
ModelOption = Annotated[str, typer.Option("--model", help="embedder or clip")]


def _migrating(model: str) -> str:
    if model not in MIGRATING:
        console.print(f"[red]unknown model {model!r}: 'embedder' or 'clip'[/red]")
        raise typer.Exit(2)
    return model


def _follow(client: httpx.Client, model: str = "embedder") -> dict[str, Any]:
    """Show the migration's progress until it is done (or Ctrl-C, which leaves it running)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}/s"), TimeRemainingColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("re-embedding", total=None, rate="-")
        while True:
            status = call(client, "GET", f"/v1/admin/models/{model}/migration")
            progress.update(task, completed=status["done"], total=status["total"] or None,
                            rate=status["rate_per_s"],
                            description=f"re-embedding → {status['target'] or status['active']}"
                            f" [{status['state']}]")
            if status["state"] in ("done", "idle"):
                return status
            if status["state"] == "stalled":
                progress.console.print(f"[yellow]stalled: {status['error']} (retrying)[/yellow]")
            time.sleep(0.5)


@app.command("list")
def list_models(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Model versions: in the repository, served by Triton, active; and migration progress."""
    with gateway_client(url) as client:
        models = call(client, "GET", "/v1/admin/models")
    if as_json:
        print(json.dumps(models))
        return
    table = Table("model", "repository", "served", "active", "migration")
    for name, view in models.items():
        migration = view.get("migration") or {"state": "-"}
        progress = (f"{migration['state']} → {view['target']} {migration['done']}/"
                    f"{migration['total']}" if view.get("target") else migration["state"])
        table.add_row(name, ", ".join(view["repository"]), ", ".join(view["served"]),
                      str(view["active"]), progress)
    Console().print(table)


@app.command()
def activate(
    model: Annotated[str, typer.Argument(help="embedder, reranker or clip")],
    version: Annotated[int, typer.Argument(min=1)],
    url: UrlOption = None,
    wait: Annotated[bool, typer.Option(help="follow the migration to the end")] = True,
) -> None:
    """Activate a version: the embedder re-embeds every memory first (CLIP every picture),
    then switches; the reranker switches at once."""
    if model not in ("reranker", *MIGRATING):
        console.print(f"[red]unknown model {model!r}: 'embedder', 'reranker' or 'clip'[/red]")
        raise typer.Exit(2)
    with gateway_client(url) as client:
        if model == "reranker":
            view = call(client, "POST", "/v1/admin/models/reranker/activate",
                         json={"version": str(version)})
            console.print(f"[green]reranker:{view['active']} is active[/green]")
            return
        call(client, "POST", f"/v1/admin/models/{model}/activate", json={"version": str(version)})
        console.print(f"migration to {model}:{version} started")
        if wait:
            status = _follow(client, model)
            console.print(f"[green]{model}:{status['active']} is active[/green]")


@app.command()
def reembed(url: UrlOption = None, model: ModelOption = "embedder") -> None:
    """Follow a running (or, after a restart, resumed) migration until it switches."""
    with gateway_client(url) as client:
        status = _follow(client, _migrating(model))
    console.print(f"[green]{model}:{status['active']} is active ({status['state']})[/green]")


@app.command()
def abandon(url: UrlOption = None, model: ModelOption = "embedder") -> None:
    """Roll back a migration: the active version stays, re-embedded vectors are dropped."""
    with gateway_client(url) as client:
        status = call(client, "POST", f"/v1/admin/models/{_migrating(model)}/abandon")
    console.print(f"migration abandoned; {model}:{status['active']} stays active")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
