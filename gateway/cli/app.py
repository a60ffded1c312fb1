"""The root ``agent-memory`` app: ``serve``, ``triton``, ``mcp`` and the verb groups.

Output is plain text (tables on the terminal) by default; the verbs that scripts read take
``--json``. Errors go to stderr with a non-zero exit status.
"""

from __future__ import annotations

import typer

from gateway.cli import backup, jobs, keys, mcp_serve, models

app = typer.Typer(help="Long-term memory for LLM agents: run the gateway and operate it.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(keys.app, name="keys")
app.add_typer(models.app, name="models")
app.add_typer(backup.app, name="backup")
app.add_typer(jobs.app, name="jobs")
app.command(name="mcp")(mcp_serve.command)


@app.command()
def serve() -> None:
    """Run the gateway and the bundled Triton until Ctrl-C (as python -m gateway)."""
    from gateway.cli.serve import main  # FastAPI and uvicorn load only for this verb

    code = main()
    if code:
        raise typer.Exit(code)


@app.command()
def triton() -> None:
    """Run the bundled Triton server alone until Ctrl-C (as python -m gateway.triton)."""
    from gateway.triton import main

    code = main([])
    if code:
        raise typer.Exit(code)


def main() -> None:
    app(prog_name="agent-memory")
