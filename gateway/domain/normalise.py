"""Text normalisation at ingest, and the key that finds exact duplicates.

Every ingested text is put in one canonical form before it is embedded or stored:

- Unicode NFC, so "é" typed as one code point or as "e" + a combining accent is one text;
- control characters (Unicode category Cc: C0, DEL, C1) are **stripped**, not refused:
  chat transcripts and scraped documents carry stray ``\\x00``/``\\x1b`` bytes that say nothing,
  and refusing a whole conversation for one of them would lose the rest; tabs and line breaks
  count as whitespace;
- every run of whitespace becomes one space, and the ends are trimmed.

A text that is empty after this holds nothing to remember.

The duplicate key is the normalised text, case-folded: "Meeting on Monday." and
"meeting  on monday." are the same memory.
"""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
# Category Cc is U+0000-U+001F and U+007F-U+009F (fixed by Unicode); the whitespace among them
# is collapsed below instead. One regex pass: a per-character Python test cost ~40 us a text.
_CONTROL = re.compile("[" + "".join(
    re.escape(chr(c)) for c in range(0xA0)
    if unicodedata.category(chr(c)) == "Cc" and not chr(c).isspace()) + "]")


def normalise_text(text: str) -> str:
    """NFC, control characters stripped, whitespace collapsed and trimmed."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text))
    return _WHITESPACE.sub(" ", text).strip()


def text_key(text: str) -> str:
    """What two texts share exactly when one is a duplicate of the other."""
    return normalise_text(text).casefold()

