"""Database files readable by their owner only.

SQLite creates a database with the process umask (often 0644: world-readable memories and key
hashes), and gives its ``-wal``, ``-shm`` and ``-journal`` files the database file's own
permissions. So the file is made 0600 before SQLite first opens it, and an existing one (made
by an older gateway) is tightened to 0600 at open, with its companions.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
COMPANIONS = ("-wal", "-shm", "-journal")


def make_private(path: Path) -> None:
    """Create ``path`` empty and 0600 if it is missing, else chmod it (and the WAL, shared
    memory and journal files beside it) to 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    for file in (path, *(Path(str(path) + suffix) for suffix in COMPANIONS)):
        try:
            if file.stat().st_mode & 0o777 != FILE_MODE:
                file.chmod(FILE_MODE)
        except FileNotFoundError:
            continue
        except OSError:  # not ours to change (a read-only mount, another owner): SQLite
            continue  # opens it as before, and the operator's permissions stand
