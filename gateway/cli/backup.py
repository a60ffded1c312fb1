"""``agent-memory backup`` (and ``python -m gateway.backup``): backups, restores, and JSON
Lines export/import of memories; each verb is one call into ``gateway.backup``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from gateway.backup.jsonl import export_jsonl, import_jsonl
from gateway.backup.snapshot import BackupError, create_backup, restore_backup
from gateway.settings import Settings
from gateway.store.in_use import StoreBusy

cli = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Backups (online, consistent) and JSON Lines export/import of memories.")


def _fail(exc: Exception) -> typer.Exit:
    print(f"error: {exc}", file=sys.stderr)
    return typer.Exit(1)


@cli.command()
def create(path: Path,
           no_keys: Annotated[bool, typer.Option("--no-keys", help="leave the API keys out")]
           = False) -> None:
    """Copy the store (and API keys) into the new directory PATH, while the gateway serves."""
    try:
        manifest = create_backup(Settings(), path, keys=not no_keys)
    except (BackupError, sqlite3.Error, OSError) as exc:
        raise _fail(exc) from exc
    print(f"backup of {manifest['memories']} memories in {path} "
          f"({', '.join(manifest['files'])})")


@cli.command()
def restore(path: Path,
            force: Annotated[bool, typer.Option(help="replace an existing store")] = False
            ) -> None:
    """Put the backup in PATH in place of the store. Refused while a gateway runs on it."""
    try:
        manifest = restore_backup(Settings(), path, force=force)
    except (BackupError, StoreBusy, sqlite3.Error, OSError) as exc:
        raise _fail(exc) from exc
    print(f"restored {manifest['memories']} memories from {path}")


@cli.command("export")
def export_command(
    out: Path,
    vectors: Annotated[bool, typer.Option(help="include each memory's embedding")] = False,
    user_id: Annotated[str | None, typer.Option(help="only this user's memories")] = None,
) -> None:
    """Write memories to OUT as JSON Lines (a header line first)."""
    try:
        count = export_jsonl(Settings(), out, vectors=vectors, user_id=user_id)
    except (BackupError, sqlite3.Error, OSError) as exc:
        raise _fail(exc) from exc
    print(f"exported {count} memories to {out}")


@cli.command("import")
def import_command(
    path: Path,
    skip_existing: Annotated[bool, typer.Option(help="skip ids already stored")] = False,
) -> None:
    """Add the memories in PATH to the store (embedding lines without vectors). Refused while
    a gateway runs on the store: its index would not see them."""
    from gateway.errors import GatewayError

    try:
        report = asyncio.run(import_jsonl(Settings(), path, skip_existing=skip_existing))
    except (BackupError, StoreBusy, GatewayError, sqlite3.Error, OSError) as exc:
        raise _fail(exc) from exc
    print(json.dumps(asdict(report)))


app = cli  # the name the other verb groups use


def main() -> None:
    cli(prog_name="python -m gateway.backup")
