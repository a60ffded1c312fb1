"""UUIDv7 ids: valid, version 7, strictly increasing within a process."""

from __future__ import annotations

import uuid

from gateway.memory.ids import parse_id, uuid7


def test_uuid7_is_version_7_and_sorted() -> None:
    ids = [uuid7() for _ in range(10_000)]
    assert all(uuid.UUID(i).version == 7 for i in ids[:100])
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_parse_id_canonicalises_and_rejects() -> None:
    value = uuid7()
    assert parse_id(value.upper()) == value
    assert parse_id("not-a-uuid") is None
    assert parse_id("") is None
