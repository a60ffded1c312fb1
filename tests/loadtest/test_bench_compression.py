"""``make bench-compression`` on a small LoCoMo-format file written here (the real data is
CC BY-NC and never in the repository): the skip without data, and one end-to-end run against
a real Triton and gateway whose compress job folds the older session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest.bench.compression import main
from loadtest.bench.retrieval import DATA_ENV

SESSIONS = {
    "9:00 am on 3 March, 2023": [
        ("Ana", "I bought a second-hand cello from a music shop."),
        ("Ben", "Our beagle puppy learned to sit today."),
        ("Ana", "My cello teacher wants me to practise scales daily."),
        ("Ben", "The puppy is afraid of the vacuum cleaner."),
        ("Ana", "I played my first cello duet with my teacher."),
        ("Ben", "We take the puppy to the park every morning."),
    ],
    "6:30 pm on 20 June, 2023": [
        ("Ana", "We painted the kitchen a bright yellow."),
        ("Ben", "I ran the city marathon in under four hours."),
        ("Ana", "The yellow kitchen makes breakfast cheerful."),
        ("Ben", "My knees hurt after the marathon."),
        ("Ana", "I am thinking about adding green tiles to the kitchen."),
        ("Ben", "Next year I want to run the Berlin marathon."),
    ],
}
QUESTIONS = [("What instrument does Ana play?", ["D1:1", "D1:3"], 1),
             ("What is Ben's puppy afraid of?", ["D1:4"], 4),
             ("What colour is Ana's kitchen?", ["D2:1"], 4),
             ("Which race does Ben want to run next year?", ["D2:6"], 4)]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    conversation: dict = {"speaker_a": "Ana", "speaker_b": "Ben"}
    for number, (stamp, turns) in enumerate(SESSIONS.items(), start=1):
        conversation[f"session_{number}_date_time"] = stamp
        conversation[f"session_{number}"] = [
            {"speaker": s, "dia_id": f"D{number}:{i}", "text": t}
            for i, (s, t) in enumerate(turns, start=1)]
    qa = [{"question": q, "answer": "-", "evidence": e, "category": c} for q, e, c in QUESTIONS]
    path = tmp_path / "tiny-locomo.json"
    path.write_text(json.dumps([{"sample_id": "conv-a", "conversation": conversation,
                                 "qa": qa}]))
    return path


def test_without_data_it_skips_with_a_clear_message(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert main(["--out", str(tmp_path)]) == 0
    assert "skipped: no --data PATH" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


def test_end_to_end_on_a_real_stack(data_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["--data", str(data_file), "--out", str(out)]) == 0
    [path] = out.glob("bench-compression-*.json")
    report = json.loads(path.read_text())
    assert report["command"] == "python -m loadtest.bench.compression --data LOCOMO.json " \
                                f"--out {out}"
    job = report["compress_job"]
    # The older session (the oldest half) is one k-means cell of 6: one summary of all 6.
    assert (job["memories"], job["summaries"], job["archived"]) == (6, 1, 6)
    searched = report["memories_searched"]
    assert (searched["before"], searched["after"]) == (12, 7)
    assert searched["cut"] == round(1 - 7 / 12, 4)
    before, after = report["recall_before"], report["recall_after"]
    assert before["turns@10"] == 10  # 10 of the 12 turns
    assert after["turns@10"] == 12  # all 7 memories left (one summary) stand for the 12 turns
    assert after["any@20"] == after["all@20"] == 1.0  # every turn is reachable after folding
    assert report["recall_drop_points"]["any@10"] == round(
        100 * (before["any@10"] - after["any@10"]), 2)
