"""Where a benchmark's JSON goes: ``<out>/<name>-<UTC timestamp>.json``, also printed."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_report(out: Path, name: str, report: dict[str, Any],
                 log: Callable[[str], None]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    log(f"written to {path}")
    return path
