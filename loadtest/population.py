"""The seeded population and realistic payload texts, shared by the seeder and the scenarios.

Kept apart from the Locust scenarios because importing Locust monkey-patches the process
(gevent), which the seeding tool and the runner must not be.
"""

from __future__ import annotations

import random

from loadtest.corpus import sentences

_POOL = sentences(2000, seed=11)
_QUERIES = [f"what about {s.split(' (#')[0].lower()}?" for s in sentences(500, seed=12)]


def seeded_user(i: int) -> str:
    """The id the seeding tool gives its i-th user."""
    return f"seed-{i:05d}"


def memory_text(rng: random.Random) -> str:
    """Short facts mostly, some paragraphs: 60% one sentence, 30% three, 10% about twelve
    (roughly 60, 190 and 750 characters)."""
    count = rng.choices([1, 3, 12], weights=[60, 30, 10])[0]
    return " ".join(rng.choice(_POOL).split(" (#")[0] + "." for _ in range(count))


def query_text(rng: random.Random) -> str:
    return rng.choice(_QUERIES)


def seed_items(user: int, memories: int) -> list[dict]:
    """The memories the seeding tool stores for one user (deterministic per user)."""
    rng = random.Random(user)
    return [{"user_id": seeded_user(user), "text": memory_text(rng),
             "metadata": {"seeded": True, "n": n}} for n in range(memories)]
