"""Backups and portable exports of the store (the CLI: ``gateway.cli.backup``).

    agent-memory backup create PATH        # consistent copy while the gateway serves
    agent-memory backup restore PATH       # put it back (gateway stopped)
    agent-memory backup export FILE [--vectors]   # memories as JSON Lines
    agent-memory backup import FILE        # into this instance's store (gateway stopped)

``snapshot``: copies of the SQLite backend's files (online backup API, checksummed manifest).
``jsonl``: memories as JSON Lines, portable between instances and model versions.
``python -m gateway.backup`` still runs the CLI (``__main__``).
"""
