"""Page cursors of memory listings: opaque to clients, an id (or occurrence time and id)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from gateway.domain.model import Memory
from gateway.errors import InvalidInput
from gateway.memory.ids import parse_id


def encode_cursor(memory_id: str) -> str:
    return base64.urlsafe_b64encode(memory_id.encode()).decode().rstrip("=")


def encode_occurred_cursor(memory: Memory) -> str:
    return encode_cursor(f"{memory.occurred_at}|{memory.id}")


def _decoded(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def _checked(memory_id: str) -> str:
    parsed = parse_id(memory_id)
    if parsed is None:
        raise InvalidInput.at(("cursor",), "invalid cursor")
    return parsed


def decode_occurred_cursor(cursor: str) -> tuple[str, str]:
    """(occurred_at, id) of the last row of a page listed by occurrence."""
    try:
        occurred, raw_id = _decoded(cursor).split("|")
        datetime.fromisoformat(occurred.replace("Z", "+00:00"))
    except ValueError:
        occurred, raw_id = "", ""
    return occurred, _checked(raw_id)


def decode_cursor(cursor: str) -> str:
    return _checked(_decoded(cursor))
