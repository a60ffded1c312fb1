"""``python -m gateway``: the documented way to serve; the same as ``agent-memory serve``."""

from __future__ import annotations

from gateway.cli.serve import main

if __name__ == "__main__":
    raise SystemExit(main())
