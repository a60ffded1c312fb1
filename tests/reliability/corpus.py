"""A small deterministic corpus and query set for the reliability tests and the chaos harness."""

from __future__ import annotations

import random

SUBJECTS = ["my sister", "the landlord", "our CTO", "the dentist", "my neighbour", "grandpa",
            "the vet", "my manager", "the plumber", "my cousin"]
FACTS = ["likes green tea", "moved to Lisbon", "plays the cello on Sundays",
         "is allergic to peanuts", "drives an old red Volvo", "collects vinyl records",
         "runs marathons", "speaks fluent Japanese", "hates cold weather",
         "keeps bees in the garden", "works night shifts", "bakes sourdough bread"]
QUERY_TOPICS = ["tea", "music", "allergies", "cars", "sport", "languages", "weather",
                "hobbies", "food", "where someone lives"]


def texts(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(FACTS)} (note {i})" for i in range(count)]


def queries(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    return [f"who {rng.choice(FACTS).split()[0]} {rng.choice(QUERY_TOPICS)} "
            f"{rng.choice(SUBJECTS)}" for _ in range(count)]
