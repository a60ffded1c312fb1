"""``python -m gateway.cli``: the ``agent-memory`` command without the installed script."""

from __future__ import annotations

from gateway.cli.app import main

if __name__ == "__main__":
    main()
