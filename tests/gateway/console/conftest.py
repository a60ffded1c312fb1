"""Says where the console's screenshots went, at the end of the run."""

from __future__ import annotations

from typing import Any

from support.browser import SAVED, screenshot_dir


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SAVED:
        terminalreporter.write_line(f"console screenshots ({len(SAVED)}): {screenshot_dir()}")
