"""Text analysis for the lexical index: text in, search terms out.

The same analysis runs on memory text when it is indexed and on a query when it is searched, so
"Running!" finds "runs". Terms are lower-cased, accent-free Snowball (Porter 2) stems of runs of
letters and digits; a short list of English function words is dropped because it matches nearly
every memory and says nothing about any of them. No user text ever reaches a query parser: the
analyser only ever emits letters and digits.

Changing what this module emits changes the index: bump ``ANALYZER_VERSION`` and add a store
migration that rebuilds the lexical index and its term statistics
(``gateway.store.sqlite.lexical.REBUILD_WITH_STATS``).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from functools import lru_cache

import Stemmer

ANALYZER_VERSION = 2  # 2: auxiliaries and question words ("did", "what", "how") dropped
MAX_TERM_CHARS = 64  # longer runs (hashes, base64 blobs) are cut: their head still matches
MAX_QUERY_TERMS = 64  # distinct terms searched per query; a pasted document keeps its first 64

# Function words that carry no topic. Deliberately short: "may" (the month), "not", numbers and
# "when" stay searchable. Auxiliaries and "what"/"how" open most questions ("What did Caroline
# research?") and matched nearly every turn; dropping them lifted keyword recall_any@10 on the
# LoCoMo development set from 0.775 to 0.796 (docs/benchmarks/retrieval.md).
STOP_WORDS = frozenset((
    "a an and are as at be been but by can could did do does for from had has have he her him "
    "his how i if in into is it its me my of on or our she should so such than that the their "
    "them then there these they this those to was we were what which will with would you "
    "your").split()
)

# Question words: kept in the index ("when" can be what a memory says) but dropped from a
# query that names anything else. "When did Jon go to the fair?" is answered by a memory that
# says "yesterday", not "when"; matching "when" only ranked chatty turns above it. Dropping
# them found 3 more of the LoCoMo development set's 759 questions at 10 in hybrid search (one
# more with fully int8 vectors; docs/benchmarks/query-path.md). Changes only what a query
# searches, not the index.
QUESTION_WORDS = frozenset("when where who whom whose why".split())

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # not strftime("%B"): that follows the locale

_WORD = re.compile(r"[^\W_]+")
_stemmer = Stemmer.Stemmer("english")
_QUESTION_STEMS = frozenset(_stemmer.stemWords(sorted(QUESTION_WORDS)))


@lru_cache(maxsize=65_536)
def _fold(token: str) -> str:
    """Lower-case, compatibility-normalised, accents removed ("Café" -> "cafe")."""
    decomposed = unicodedata.normalize("NFKD", token.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The text's words, folded, in order, stop words included."""
    out: list[str] = []
    for match in _WORD.finditer(text):
        token = _fold(match.group())
        # Folding can expose separators (e.g. a compatibility form); split again.
        out.extend(part[:MAX_TERM_CHARS] for part in _WORD.findall(token))
    return out


def terms(text: str) -> list[str]:
    """Index terms of a text, in order and with repeats (BM25 counts them)."""
    kept = [w for w in words(text) if w not in STOP_WORDS]
    return list(_stemmer.stemWords(kept))


def query_terms(text: str) -> list[str]:
    """Distinct index terms of a query, in first-seen order, at most ``MAX_QUERY_TERMS``;
    question words only where the query has nothing else ("when?" still searches "when")."""
    found = list(dict.fromkeys(terms(text)))
    topical = [term for term in found if term not in _QUESTION_STEMS]
    return (topical or found)[:MAX_QUERY_TERMS]


def date_terms(moment: str) -> list[str]:
    """Terms for when something happened, as people write it: "8 May 2023" -> 8, may, 2023.

    ``moment`` is the store's UTC ISO-8601 text. Month names are stemmed like query words so a
    question saying "in May" meets them.
    """
    when = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    return terms(f"{when.day} {MONTHS[when.month - 1]} {when.year}")
