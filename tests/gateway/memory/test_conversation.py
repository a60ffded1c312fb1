"""Conversation context and speaker attribution (gateway/memory/conversation.py)."""

from __future__ import annotations

from gateway.memory.conversation import MAX_CONTEXT_CHARS, Said, attributed, contexts


def test_each_message_gets_its_neighbours_in_order() -> None:
    said = [Said("Ana", "hi"), Said("Ben", "hello"), Said("Ana", "pottery?"), Said("Ben", "yes")]
    assert contexts(said) == ["Ben: hello", "Ana: hi Ana: pottery?", "Ben: hello Ben: yes",
                              "Ana: pottery?"]
    assert contexts(said, neighbours=2)[0] == "Ben: hello Ana: pottery?"
    assert contexts([Said("Ana", "alone")]) == [None]
    assert contexts([]) == []


def test_a_long_neighbour_is_cut() -> None:
    [first, _] = contexts([Said("Ana", "x"), Said("Ben", "y" * 10 * MAX_CONTEXT_CHARS)])
    assert first is not None and len(first) == MAX_CONTEXT_CHARS


def test_the_embedded_text_names_its_speaker() -> None:
    assert attributed("Yes, it was amazing!", "Melanie") == "Melanie: Yes, it was amazing!"
    assert attributed("A fact", None) == "A fact"
