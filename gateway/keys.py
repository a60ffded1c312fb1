"""``python -m gateway.keys``: kept for the documented command; the CLI lives in
``gateway.cli.keys`` (``agent-memory keys``)."""

from __future__ import annotations

from gateway.cli.keys import app, main, parse_expiry

__all__ = ["app", "main", "parse_expiry"]

if __name__ == "__main__":
    main()
