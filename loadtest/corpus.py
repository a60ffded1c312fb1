"""Deterministic synthetic memories: varied, realistic-length sentences for benchmarks."""

from __future__ import annotations

import random

_SUBJECTS = ["I", "My sister", "The user", "Our team", "My manager", "The customer", "We",
             "My partner", "The agent", "Grandma"]
_VERBS = ["prefers", "dislikes", "booked", "forgot", "mentioned", "is allergic to", "bought",
          "wants to learn", "cancelled", "recommended", "asked about", "is worried about"]
_OBJECTS = ["window seats on long flights", "spicy Thai food", "a trip to Lisbon in May",
            "the quarterly tax report", "hiking in the Alps", "jazz concerts on Fridays",
            "a new mechanical keyboard", "learning Japanese", "the dentist appointment",
            "vegetarian restaurants", "the deploy that failed on Tuesday", "early morning runs",
            "noise-cancelling headphones", "a subscription to a chess site", "peanuts",
            "the broken dishwasher", "renewing the passport", "a quiet hotel room",
            "Python type hints", "the database migration", "red wine from Porto"]
_TAILS = ["", " because it was mentioned twice last week",
          " and wants a reminder before the weekend", " according to the last conversation",
          ", which matters for planning the next project milestone",
          " — noted during the support call about billing",
          " so suggestions should take that into account from now on"]


def sentences(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        f"{rng.choice(_TAILS)} (#{i})"
        for i in range(count)
    ]
