"""The service's clock: times are UTC ISO-8601 text of fixed width, so text order is time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def time_text(moment: datetime) -> str:
    """A UTC datetime as the store's text: ISO-8601 with microseconds and 'Z' (fixed width, so
    text order is time order)."""
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_now() -> str:
    """Now, as the store's text."""
    return time_text(datetime.now(UTC))


def utc_later(seconds: float) -> str:
    """``seconds`` from now, as the store's text (leases, retry times)."""
    return time_text(datetime.now(UTC) + timedelta(seconds=seconds))


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
