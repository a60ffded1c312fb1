"""Session lift (gateway.memory.sessions): pure functions, no server."""

from __future__ import annotations

import pytest

from gateway.domain.model import Memory, ScoredMemory
from gateway.memory.sessions import lift_sessions, lifted, session_key


def test_a_message_is_pulled_toward_the_best_other_hit_of_its_session() -> None:
    ranked = [("topic", 0.10), ("other", 0.09), ("alone", 0.06), ("reply", 0.05)]
    sessions = {"topic": "s1", "reply": "s1", "other": "s2", "alone": None}
    out = dict(lifted(ranked, sessions, 0.5))
    assert out["reply"] == pytest.approx(0.05 + 0.5 * (0.10 - 0.05))  # toward the topic's hit
    assert out["topic"] == pytest.approx(0.10)  # the session's best keeps its score
    assert out["other"] == pytest.approx(0.09)  # alone in its session: no other hit
    assert out["alone"] == pytest.approx(0.06)  # not a message: left as it is
    assert [i for i, _ in lifted(ranked, sessions, 0.5)] == ["topic", "other", "reply",
                                                             "alone"]
    assert lifted(ranked, sessions, 0.0) == ranked  # off


def test_messages_never_lift_each_other_past_a_better_lone_memory() -> None:
    ranked = [("lone", 0.036), ("food", 0.033), ("work", 0.031)]
    out = lifted(ranked, {"lone": None, "food": "s", "work": "s"}, 1.0)
    assert [i for i, _ in out] == ["lone", "food", "work"]
    assert dict(out)["work"] == pytest.approx(0.033)  # at most its session's best


def _scored(memory_id: str, role: str | None, occurred_at: str, score: float) -> ScoredMemory:
    memory = Memory(id=memory_id, user_id="u", agent_id=None, run_id=None, text="t",
                    metadata={}, priority=5, created_at="", updated_at="",
                    embedding_model="m", occurred_at=occurred_at, role=role)
    return ScoredMemory(memory, score, None, None)


def test_sessions_are_messages_that_share_their_moment() -> None:
    assert session_key("user", "2023-05-08T13:56:00Z") == "2023-05-08T13:56:00Z"
    assert session_key(None, "2023-05-08T13:56:00Z") is None  # a text item: no session
    found = lift_sessions([
        _scored("hit", "user", "2023-05-08T13:56:00Z", 0.3),
        _scored("text", None, "2023-05-08T13:56:00Z", 0.25),  # same moment, not a message
        _scored("reply", "assistant", "2023-05-08T13:56:00Z", 0.2)], 0.5)
    assert [(s.memory.id, s.score) for s in found] == [
        ("hit", pytest.approx(0.3)), ("text", 0.25), ("reply", pytest.approx(0.25))]  # a tie
    found = lift_sessions([
        _scored("hit", "user", "2023-05-08T13:56:00Z", 0.3),
        _scored("text", None, "2023-05-08T13:56:00Z", 0.22),
        _scored("reply", "assistant", "2023-05-08T13:56:00Z", 0.2)], 0.5)
    assert [s.memory.id for s in found] == ["hit", "reply", "text"]
