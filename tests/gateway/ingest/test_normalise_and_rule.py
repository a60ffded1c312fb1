"""Normalisation and the near-duplicate rule, on their own (pure functions)."""

from __future__ import annotations

import pytest

from gateway.domain.normalise import normalise_text, text_key
from gateway.memory.dedup import DedupPolicy, is_duplicate, near_duplicate


def test_normalise_nfc_controls_and_whitespace() -> None:
    decomposed = "Cafe\u0301  au\tlait\n\n"
    assert normalise_text(decomposed) == "Caf\u00e9 au lait"
    assert normalise_text("bell\x07 and\x00 nul\x1b[0m") == "bell and nul[0m"
    assert normalise_text("\x00\x01 \x7f\x9f") == ""
    assert normalise_text("  already fine ") == "already fine"


def test_text_key_ignores_case_and_spacing_only() -> None:
    assert text_key("Meeting on  MONDAY.") == text_key("meeting on monday.")
    assert text_key("meeting on monday") != text_key("meeting on monday.")
    assert text_key("Cafe\u0301") == text_key("caf\u00e9")


@pytest.mark.parametrize(("a", "b"), [
    ("My uncle lives in Toronto.", "My uncle lives in Torotno."),  # transposition
    ("I am allergic to peanuts.", "I'm allergic to peanuts!"),  # contraction, punctuation
    ("I do not like olives", "FYI, I don't like olives"),  # lead-in phrase, contraction
    ("The auth deploy failed", "By the way, the auth deploy failed."),
    ("I bought a yellow jacket", "I bought a yelow jackett"),  # two one-edit typos
])
def test_near_duplicates(a: str, b: str) -> None:
    assert near_duplicate(a, b) and near_duplicate(b, a)


@pytest.mark.parametrize(("a", "b"), [
    ("Meeting with Ben on Friday at 3 pm.", "Meeting with Ben on Friday at 6 pm."),
    ("Meeting on Monday", "Meeting on Sunday"),  # two edits apart: another day
    ("I am allergic to peanuts.", "I am not allergic to peanuts."),  # negation adds a word
    ("I like tea", "I dislike tea"),
    ("Anna owes Ben money", "Ben owes Anna money"),  # order matters
    ("Call Ben", "Call Ken"),  # short words do not count as typos
    ("I have 3 kids", "I have 8 kids"),
    ("I bought a yellow jacket last week", "I bought a yellow jacket"),  # fewer words
    ("I bought a yelow jackett lsat week", "I bought a yellow jacket last week"),  # 3 typos
])
def test_look_alikes_are_not_duplicates(a: str, b: str) -> None:
    assert not near_duplicate(a, b)


def test_cosine_floor_and_plain_cosine_rule() -> None:
    policy = DedupPolicy(min_cosine=0.5)
    assert is_duplicate(policy, "My uncle lives in Torotno", "My uncle lives in Toronto", 0.51)
    assert not is_duplicate(policy, "My uncle lives in Torotno", "My uncle lives in Toronto",
                            0.49)
    plain = DedupPolicy(min_cosine=0.95, lexical=False)
    assert is_duplicate(plain, "Meeting on Monday", "Meeting on Tuesday", 0.97)
    assert not is_duplicate(plain, "Meeting on Monday", "Meeting on Monday!", 0.94)
