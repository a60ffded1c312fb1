"""``python -m gateway.jobs``: kept for the documented command; the CLI lives in
``gateway.cli.jobs`` (``agent-memory jobs``)."""

from __future__ import annotations

from gateway.cli.jobs import main

if __name__ == "__main__":
    main()
