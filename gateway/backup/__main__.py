"""``python -m gateway.backup``: the same CLI as ``agent-memory backup``."""

from gateway.cli.backup import main

main()
