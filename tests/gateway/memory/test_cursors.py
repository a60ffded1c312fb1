"""Page cursors round-trip, and a forged one names the field at fault
(gateway/memory/cursors.py)."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidInput
from gateway.memory.cursors import decode_cursor, decode_occurred_cursor, encode_cursor
from gateway.memory.ids import uuid7


def test_a_cursor_round_trips() -> None:
    memory_id = uuid7()
    assert decode_cursor(encode_cursor(memory_id)) == memory_id
    moment = "2026-01-02T03:04:05.000006Z"
    assert decode_occurred_cursor(encode_cursor(f"{moment}|{memory_id}")) == (moment, memory_id)


@pytest.mark.parametrize("cursor", ["", "!!!", encode_cursor("not-an-id"),
                                    encode_cursor("yesterday|x")])
def test_a_forged_cursor_names_the_cursor(cursor: str) -> None:
    for decode in (decode_cursor, decode_occurred_cursor):
        with pytest.raises(InvalidInput) as caught:
            decode(cursor)
        assert caught.value.field == ("cursor",) and caught.value.detail == "invalid cursor"
