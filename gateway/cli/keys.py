"""``agent-memory keys`` (and ``python -m gateway.keys``): create, list and revoke API keys
(see ``gateway.auth``).

    agent-memory keys create --tenant acme [--scope read|write|admin] [--expires 30d]
    agent-memory keys create --tenant ops --scope operator
    agent-memory keys list [--tenant acme] [--json]
    agent-memory keys revoke <key id>

Works on the keys file directly (``MEMORY_DATA_DIR/keys.sqlite3``), also while the gateway
runs: SQLite in WAL mode lets both write, and the gateway reads a key's row on each request,
so a revocation applies to the next request. ``create`` prints the key once, on stdout alone
(``KEY=$(agent-memory keys create --tenant acme)``); only its hash is stored.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gateway.auth.principal import KeyScope
from gateway.auth.scope import valid_tenant
from gateway.auth.store import KeyStore
from gateway.cli.http import JsonOption
from gateway.settings import Settings
from gateway.startup import key_table

SCOPES = tuple(scope.label for scope in KeyScope)  # read, write, admin, operator

app = typer.Typer(help="API keys of the gateway: create, list, revoke.", no_args_is_help=True,
                  add_completion=False)
console = Console(stderr=True)
KeysOption = Annotated[Path | None, typer.Option(help="keys file (default from settings: "
                                                      "MEMORY_DATA_DIR/keys.sqlite3)")]
_DURATION = re.compile(r"^([1-9][0-9]{0,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _store(path: Path | None) -> KeyStore:
    """The keys file given, else the gateway's keys (PostgreSQL under MEMORY_STORE_URL)."""
    if path is not None:
        return KeyStore(path)
    settings = Settings()
    return KeyStore(settings.keys_path, key_table(settings))


def parse_expiry(text: str, now: datetime) -> datetime:
    """``30d``/``12h``/``90m``/``2w`` from now, or an ISO-8601 instant (naive = UTC)."""
    match = _DURATION.fullmatch(text.strip())
    if match:
        return now + timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise typer.BadParameter("a duration like 30d, 12h, 90m, 2w, or an ISO-8601 "
                                 "date/time") from exc
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment <= now:
        raise typer.BadParameter("must lie in the future")
    return moment


@app.command()
def create(
    tenant: Annotated[str, typer.Option(help="the tenant whose memories the key reaches")],
    scope: Annotated[str, typer.Option(help="read, write (includes read), admin (its "
                                            "tenant's jobs too) or operator (the whole "
                                            "service: models, every tenant's jobs, "
                                            "/metrics)")] = "write",
    expires: Annotated[str | None, typer.Option(help="30d, 12h, ... or an ISO-8601 "
                                                     "date/time")] = None,
    name: Annotated[str, typer.Option(help="a label for `list`")] = "",
    rate: Annotated[float | None, typer.Option(min=0.001, help="requests/s this key may "
                                                               "make (token bucket)")] = None,
    keys: KeysOption = None,
) -> None:
    """Create a key and print it (once: only its hash is kept)."""
    if not valid_tenant(tenant):
        raise typer.BadParameter("letters, digits, '_', '.', '-', at most 64, starting with a "
                                 "letter or digit", param_hint="--tenant")
    if scope not in SCOPES:
        raise typer.BadParameter(", ".join(SCOPES), param_hint="--scope")
    now = datetime.now(UTC)
    expires_at = parse_expiry(expires, now) if expires else None
    with _store(keys) as store:
        new, record = store.create(tenant, KeyScope.parse(scope), name=name,
                                   expires_at=expires_at, rate_per_s=rate, now=now)
    console.print(f"created key [bold]{record.key_id}[/bold] for tenant {tenant!r}, scope "
                  f"{scope}, expires {record.expires_at or 'never'}; store it now, it is not "
                  "shown again:")
    print(new.secret_key)


@app.command("list")
def list_keys(tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None,
              keys: KeysOption = None, as_json: JsonOption = False) -> None:
    """Keys (ids, never secrets) with tenant, scope and state."""
    now = datetime.now(UTC)
    with _store(keys) as store:
        records = store.all(tenant)
    if as_json:
        print(json.dumps([{"key_id": r.key_id, "tenant": r.tenant, "scope": r.scope.label,
                           "name": r.name, "rate_per_s": r.rate_per_s,
                           "created_at": r.created_at, "expires_at": r.expires_at,
                           "state": r.usable(now) or "active"} for r in records]))
        return
    table = Table("key id", "tenant", "scope", "name", "rate/s", "created", "expires", "state")
    for r in records:
        table.add_row(r.key_id, r.tenant, r.scope.label, r.name,
                      "-" if r.rate_per_s is None else f"{r.rate_per_s:g}", r.created_at,
                      r.expires_at or "never", r.usable(now) or "active")
    Console().print(table)


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="the id shown by create and list")],
           keys: KeysOption = None) -> None:
    """Revoke a key: the next request with it gets 401."""
    with _store(keys) as store:
        if not store.revoke(key_id):
            console.print(f"[red]no active key {key_id!r}[/red]")
            raise typer.Exit(1)
    console.print(f"revoked {key_id}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
