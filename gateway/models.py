"""``python -m gateway.models``: kept for the documented command; the CLI lives in
``gateway.cli.models`` (``agent-memory models``)."""

from __future__ import annotations

from gateway.cli.models import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
