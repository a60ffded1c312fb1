"""Speaker-aware ranking (gateway.memory.speakers): pure functions, no server."""

from __future__ import annotations

from gateway.domain.model import Memory, ScoredMemory
from gateway.memory.speakers import boost_named_speaker, boosted, named_speaker


def test_only_a_query_naming_exactly_one_speaker_names_one() -> None:
    speakers = ["Caroline", "Melanie", None, "Caroline"]
    assert named_speaker("What did Caroline research?", speakers) == "Caroline"
    assert named_speaker("what did caroline's sister say?", speakers) == "Caroline"
    assert named_speaker("What do Caroline and Melanie share?", speakers) is None
    assert named_speaker("What did Carolines research?", speakers) is None  # a whole word
    assert named_speaker("Who painted the lake?", speakers) is None
    assert named_speaker("What did a.b say?", ["a.b", "a+b", "(x"]) == "a.b"  # no regex
    assert named_speaker("x" * 200, ["x" * 150]) is None  # overlong names are not matched


def test_the_named_speakers_scores_are_multiplied_and_reordered() -> None:
    ranked = [("m1", 0.09), ("c1", 0.08), ("m2", 0.07), ("c2", 0.03)]
    speaker_of = {"m1": "Melanie", "c1": "Caroline", "m2": "Melanie", "c2": "caroline"}
    out = boosted(ranked, speaker_of, "What did Caroline paint?", 1.5)
    assert [i for i, _ in out] == ["c1", "m1", "m2", "c2"]
    assert dict(out)["c1"] == 0.08 * 1.5 and dict(out)["c2"] == 0.03 * 1.5
    assert dict(out)["m1"] == 0.09
    assert boosted(ranked, speaker_of, "What did Caroline paint?", 1.0) == ranked  # off
    assert boosted(ranked, speaker_of, "What did they paint?", 1.5) == ranked  # nobody named


def _scored(memory_id: str, speaker: str | None, score: float) -> ScoredMemory:
    memory = Memory(id=memory_id, user_id="u", agent_id=None, run_id=None, text="t",
                    metadata={}, priority=5, created_at="", updated_at="",
                    embedding_model="m", occurred_at="", expires_at=None, speaker=speaker)
    return ScoredMemory(memory, score, 0.5, None)


def test_scored_memories_keep_their_fields_and_take_the_new_order() -> None:
    found = boost_named_speaker("Did Jon open the store?", [
        _scored("a", "Gina", 0.5), _scored("b", None, 0.4), _scored("c", "Jon", 0.3)], 2.0)
    assert [(s.memory.id, s.score) for s in found] == [("c", 0.6), ("a", 0.5), ("b", 0.4)]
    assert found[0].similarity == 0.5
