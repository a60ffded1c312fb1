"""Read a LoCoMo-format file into turns (memories to store) and questions (searches to ask).

The format (LoCoMo, Maharana et al., ACL 2024): a JSON list of samples, each with a
``conversation`` (``session_N`` turn lists and ``session_N_date_time`` stamps such as
``"1:56 pm on 8 May, 2023"``) and ``qa`` items with ``evidence`` turn ids (``D<session>:<turn>``).
The data is CC BY-NC and is never shipped with this project: the caller names the file.

Only what retrieval needs is read; the generated summaries and observations are ignored on
purpose (storing them would leak the answers).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}
# Category 5 (adversarial) has no answer in the conversation: left out of retrieval scores.
EVIDENCE_ID = re.compile(r"D(\d+):(\d+)")
SESSION_KEY = re.compile(r"session_(\d+)")
DATE_FORMAT = "%I:%M %p on %d %B, %Y"  # "1:56 pm on 8 May, 2023"


class DataError(ValueError):
    """The file is not in the LoCoMo format (the message says where)."""


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    caption: str | None
    occurred_at: datetime  # the session's date and time, taken as UTC (the data has no zone)

    def message_text(self) -> str:
        """What was said, the image caption appended (a message's ``content``)."""
        if self.caption:
            return f"{self.text} [shared an image: {self.caption}]"
        return self.text

    def memory_text(self, *, with_date: bool = False) -> str:
        """The turn as a person would store it as one text: speaker and message.

        ``with_date`` prefixes the session's date, to measure what dated text does to recall.
        """
        text = f"{self.speaker}: {self.message_text()}"
        if with_date:
            text = f"[{self.occurred_at:%-d %B %Y}] {text}"
        return text


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    evidence: frozenset[str]  # valid turn ids only


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    turns: tuple[Turn, ...]
    questions: tuple[Question, ...]  # categories 1-4 with at least one valid evidence id
    dropped_evidence: int  # malformed ids or ids of no turn
    dropped_questions: int  # category 1-4 questions left without valid evidence


def parse_session_date(value: str) -> datetime:
    """``"1:56 pm on 8 May, 2023"`` -> 2023-05-08T13:56:00+00:00."""
    try:
        return datetime.strptime(value.strip(), DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError as exc:
        raise DataError(f"unreadable session date {value!r}") from exc


def _turns(conversation: dict, sample_id: str) -> list[Turn]:
    turns = []
    sessions = sorted(
        (int(m[1]), key) for key in conversation if (m := SESSION_KEY.fullmatch(key))
    )
    for number, key in sessions:
        stamp = conversation.get(f"{key}_date_time")
        if not isinstance(stamp, str):
            raise DataError(f"{sample_id}: {key} has no {key}_date_time")
        when = parse_session_date(stamp)
        for raw in conversation[key]:
            try:
                turns.append(Turn(dia_id=str(raw["dia_id"]), speaker=str(raw["speaker"]),
                                  text=str(raw["text"]), caption=raw.get("blip_caption") or None,
                                  occurred_at=when))
            except (KeyError, TypeError) as exc:
                raise DataError(f"{sample_id}: session {number} has a malformed turn") from exc
    return turns


def _conversation(sample: dict) -> Conversation:
    try:
        sample_id = str(sample["sample_id"])
        turns = _turns(sample["conversation"], sample_id)
        qa = sample["qa"]
    except (KeyError, TypeError) as exc:
        raise DataError(f"a sample lacks {exc}") from exc
    known = {t.dia_id for t in turns}
    questions, dropped_ids, dropped_questions = [], 0, 0
    for item in qa:
        if item.get("category") not in CATEGORIES:
            continue
        evidence = {e.strip() for e in item.get("evidence", []) if isinstance(e, str)}
        valid = frozenset(e for e in evidence if EVIDENCE_ID.fullmatch(e) and e in known)
        dropped_ids += len(evidence) - len(valid)
        if not valid:
            dropped_questions += 1
            continue
        questions.append(Question(str(item["question"]), int(item["category"]), valid))
    return Conversation(sample_id, tuple(turns), tuple(questions), dropped_ids, dropped_questions)


def load(path: Path) -> list[Conversation]:
    """Every sample of a LoCoMo-format file; raises DataError on anything else."""
    try:
        samples = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    if not isinstance(samples, list) or not samples:
        raise DataError(f"{path} is not a non-empty JSON list of samples")
    return [_conversation(s) for s in samples]
