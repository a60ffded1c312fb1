"""A labelled duplicate-detection set, generated (synthetic, no third-party data).

Each user gets distinct base facts from templates; then, per base fact, planted **duplicates**
(exact: the same text with other case or spacing; near: punctuation, a filler phrase, a
contraction, one typo) and **look-alikes** that are *not* duplicates: the same sentence with
one slot changed (another day, time, number, person, place or a negation), the hard case for a
cosine threshold. Base facts of one user are look-alikes of each other too (same templates).

``examples(seed)`` returns the base facts to store first and the probes to add after them,
each probe labelled with the base fact it duplicates (or None).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TIMES = ["8 am", "9 am", "10:30", "noon", "2 pm", "3 pm", "4:15 pm", "6 pm", "7 pm"]
PEOPLE = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
CITIES = ["Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi", "Lyon", "Denver", "Porto"]
RELATIVES = ["sister", "brother", "mother", "father", "cousin", "aunt", "uncle"]
FOODS = ["peanuts", "shellfish", "gluten", "dairy", "eggs", "mushrooms", "olives"]
DRINKS = ["green tea", "black coffee", "espresso", "oat latte", "sparkling water"]
ITEMS = ["bike", "laptop", "jacket", "camera", "guitar", "backpack"]
COLOURS = ["red", "blue", "black", "green", "grey", "yellow"]
MONTHS = ["January", "March", "May", "July", "September", "November"]
CAUSES = ["an expired TLS certificate", "a full disk", "a missing environment variable",
          "a schema migration timeout", "an out-of-memory kill", "a DNS outage"]
SERVICES = ["billing", "search", "checkout", "auth", "payments", "reports"]
PETS = ["dog", "cat", "parrot", "rabbit", "hamster"]
NUMBERS = ["2", "3", "4", "5", "7", "10", "12"]

# (template, slot -> choices); a look-alike changes one slot, a negatable one flips too.
TEMPLATES: list[tuple[str, dict[str, list[str]]]] = [
    ("I have a meeting with {p} on {d} at {t}.", {"p": PEOPLE, "d": DAYS, "t": TIMES}),
    ("My {r} lives in {c}.", {"r": RELATIVES, "c": CITIES}),
    ("I am allergic to {f}.", {"f": FOODS}),
    ("I usually drink {k} in the morning.", {"k": DRINKS}),
    ("The {s} deploy failed because of {x}.", {"s": SERVICES, "x": CAUSES}),
    ("My flight to {c} leaves on {d} at {t}.", {"c": CITIES, "d": DAYS, "t": TIMES}),
    ("I bought a {o} {i} last week.", {"o": COLOURS, "i": ITEMS}),
    ("{p}'s birthday is on {m} {n}.", {"p": PEOPLE, "m": MONTHS, "n": NUMBERS}),
    ("I have {n} kids and a {a}.", {"n": NUMBERS, "a": PETS}),
    ("The {s} team standup moved to {t} on {d}s.", {"s": SERVICES, "t": TIMES, "d": DAYS}),
    ("I like {k} but I do not like {f}.", {"k": DRINKS, "f": FOODS}),
    ("{p} recommended a restaurant in {c}.", {"p": PEOPLE, "c": CITIES}),
]
FILLERS = ["Just so you know, ", "FYI, ", "By the way, ", "Note: ", "Remember that "]
CONTRACTIONS = [("I am", "I'm"), ("do not", "don't"), ("I have", "I've")]
NEGATIONS = [("I am allergic", "I am not allergic"), ("I usually drink", "I never drink"),
             ("I like", "I dislike"), ("failed", "succeeded")]


@dataclass(frozen=True, slots=True)
class Probe:
    text: str
    kind: str  # exact | near | lookalike
    duplicate_of: int | None  # index into the user's base facts, None for a non-duplicate


@dataclass(frozen=True, slots=True)
class UserSet:
    user: str
    base: list[str]
    probes: list[Probe]


def _fill(template: str, slots: dict[str, str]) -> str:
    return template.format(**slots)


def _typo(text: str, rng: random.Random) -> str:
    words = [w for w in re.findall(r"[A-Za-z]{6,}", text)]
    if not words:
        return text + " "
    word = rng.choice(words)
    i = rng.randrange(1, len(word) - 2)
    swapped = word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return text.replace(word, swapped, 1)


def _near(text: str, rng: random.Random) -> str:
    options = [
        lambda s: s.rstrip(".") + "!",
        lambda s: s.rstrip("."),
        lambda s: rng.choice(FILLERS) + s[0].lower() + s[1:],
        lambda s: _typo(s, rng),
    ]
    for long, short in CONTRACTIONS:
        if long in text:
            options.append(lambda s, a=long, b=short: s.replace(a, b))
        if short in text:
            options.append(lambda s, a=long, b=short: s.replace(b, a))
    out = rng.choice(options)(text)
    return out if out != text else text.rstrip(".") + " !"


def _exact(text: str, rng: random.Random) -> str:
    variants = [text, text.upper(), text.lower(), "  " + text.replace(" ", "  ") + " ",
                text.replace(" ", "\t", 1)]
    return rng.choice(variants)


def _lookalike(template: str, slots: dict[str, str], choices: dict[str, list[str]],
               rng: random.Random) -> str:
    text = _fill(template, slots)
    negatable = [(a, b) for a, b in NEGATIONS if a in text]
    if negatable and rng.random() < 0.3:
        a, b = rng.choice(negatable)
        return text.replace(a, b, 1)
    slot = rng.choice(sorted(choices))
    other = rng.choice([v for v in choices[slot] if v != slots[slot]])
    return _fill(template, {**slots, slot: other})


def user_set(user: str, rng: random.Random, facts: int) -> UserSet:
    seen: set[str] = set()
    base: list[tuple[str, dict[str, str], dict[str, list[str]]]] = []
    while len(base) < facts:
        template, choices = rng.choice(TEMPLATES)
        slots = {name: rng.choice(values) for name, values in choices.items()}
        text = _fill(template, slots)
        if text not in seen:
            seen.add(text)
            base.append((template, slots, choices))
    probes: list[Probe] = []
    for i, (template, slots, choices) in enumerate(base):
        text = _fill(template, slots)
        probes.append(Probe(_exact(text, rng), "exact", i))
        probes.append(Probe(_near(text, rng), "near", i))
        lookalike = _lookalike(template, slots, choices, rng)
        if lookalike not in seen:  # a look-alike that is another fact is a duplicate
            seen.add(lookalike)
            probes.append(Probe(lookalike, "lookalike", None))
    rng.shuffle(probes)
    return UserSet(user, [_fill(t, s) for t, s, _ in base], probes)


def examples(seed: int = 7, users: int = 10, facts: int = 40) -> list[UserSet]:
    rng = random.Random(seed)
    return [user_set(f"dedup-user-{u}", rng, facts) for u in range(users)]
