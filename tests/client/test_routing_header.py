"""The affinity hint the client attaches for a proxy in front of several replicas."""

from __future__ import annotations

from agent_memory import _core as core


def test_a_request_naming_one_user_carries_it() -> None:
    assert core.routing({"user_id": "alice"}, None) == {"X-Memory-User": "alice"}
    assert core.routing(None, {"user_id": "bob", "query": "tea"}) == {"X-Memory-User": "bob"}
    batch = {"items": [{"user_id": "carol", "text": "a"}, {"user_id": "carol", "text": "b"}]}
    assert core.routing(None, batch) == {"X-Memory-User": "carol"}


def test_ascii_ids_are_sent_as_a_json_body_names_them() -> None:
    """A proxy hashing a body's ``user_id`` must see the same bytes as the header."""
    assert core.routing({"user_id": "a.b@example.com:1/x%y"}, None) == {
        "X-Memory-User": "a.b@example.com:1/x%y"}


def test_other_characters_are_percent_encoded_to_stay_a_valid_header() -> None:
    header = core.routing({"user_id": "zoë \r\nX-Evil: 1"}, None)["X-Memory-User"]
    assert header == "zo%C3%AB%20%0D%0AX-Evil:%201"
    assert header.isascii() and "\n" not in header


def test_requests_without_one_user_carry_nothing() -> None:
    assert core.routing(None, None) == {}
    assert core.routing(None, {"text": "no user"}) == {}
    assert core.routing(None, {"items": []}) == {}
    assert core.routing(None, {"user_id": 7}) == {}  # not a user id: the gateway answers 422
