"""``make bench-retrieval`` on a small LoCoMo-format file written here (the real data is
CC BY-NC and never in the repository): the loader's rules, the recall arithmetic, the skip
without data, and one end-to-end run against a real Triton and gateway."""

from __future__ import annotations

import argparse
import inspect
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.postgres import PostgresServer

from loadtest.bench import locomo
from loadtest.bench.fusion_sweep import grid, server_policy
from loadtest.bench.retrieval import (
    DATA_ENV,
    README_BEGIN,
    README_END,
    main,
    modes,
    parse_profile,
    public_command,
    write_readme,
)
from loadtest.bench.retrieval_metrics import Answer, recall, recall_report

# Two people, two sessions, one clear topic per turn: the questions paraphrase their turn.
SESSIONS = {
    "1:56 pm on 8 May, 2023": [
        ("Ana", "I finally signed up for cello lessons at the music school."),
        ("Ben", "We brought home a little beagle puppy on Saturday!"),
        ("Ana", "My sister is getting married in Lisbon next spring."),
        ("Ben", "I've been training for a marathon, running 40 km a week."),
        ("Ana", "Work is stressful, my manager quit suddenly."),
        ("Ben", "Look at the sunset from our balcony.",
         "a photo of an orange sunset over the sea"),
    ],
    "10:15 am on 2 June, 2023": [
        ("Ana", "The wedding venue is a old monastery by the river."),
        ("Ben", "The puppy chewed through my running shoes."),
        ("Ana", "I can play a simple Bach prelude on the cello now."),
        ("Ben", "I cooked paella for my parents yesterday."),
        ("Ana", "We are thinking about painting the kitchen yellow."),
        ("Ben", "My tax return finally came back."),
    ],
}
QUESTIONS = [
    ("What instrument is Ana learning?", ["D1:1", "D2:3"], 1),
    ("When did Ben get a dog?", ["D1:2"], 2),
    ("Where will the wedding of Ana's sister take place?", ["D1:3", "D2:1"], 1),
    ("What sport is Ben training for?", ["D1:4"], 4),
    ("What did Ben cook for his parents?", ["D2:4"], 4),
    ("Which colour might Ana paint her kitchen?", ["D2:5"], 3),
    ("What happened to Ben's shoes?", ["D2:2", "D", "D7:99"], 4),  # two bad ids dropped
    ("What did Ana say about aliens?", ["D1:1"], 5),  # adversarial: not scored
    ("Is this question dropped?", ["D", "D1:"], 4),  # no valid evidence left
]


def sample(sample_id: str) -> dict:
    conversation: dict = {"speaker_a": "Ana", "speaker_b": "Ben"}
    for number, (stamp, turns) in enumerate(SESSIONS.items(), start=1):
        conversation[f"session_{number}_date_time"] = stamp
        conversation[f"session_{number}"] = [
            {"speaker": t[0], "dia_id": f"D{number}:{i}", "text": t[1],
             **({"img_url": ["x"], "blip_caption": t[2]} if len(t) > 2 else {})}
            for i, t in enumerate(turns, start=1)]
    qa = [{"question": q, "answer": "-", "evidence": e, "category": c} for q, e, c in QUESTIONS]
    return {"sample_id": sample_id, "conversation": conversation, "qa": qa,
            "session_summary": {"s1": "LEAK"}, "observation": {}, "event_summary": {}}


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-locomo.json"
    path.write_text(json.dumps([sample("conv-a"), sample("conv-b")]))
    return path


def test_loader_keeps_turns_dates_and_valid_evidence_only(data_file: Path) -> None:
    first, second = locomo.load(data_file)
    assert (first.sample_id, second.sample_id) == ("conv-a", "conv-b")
    assert len(first.turns) == 12
    assert first.turns[0].occurred_at == datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert first.turns[6].occurred_at == datetime(2023, 6, 2, 10, 15, tzinfo=UTC)
    assert first.turns[0].memory_text() == (
        "Ana: I finally signed up for cello lessons at the music school.")
    assert first.turns[5].memory_text(with_date=True) == (
        "[8 May 2023] Ben: Look at the sunset from our balcony. "
        "[shared an image: a photo of an orange sunset over the sea]")
    # Category 5 left out, the question without valid evidence dropped, bad ids counted.
    assert [q.category for q in first.questions] == [1, 2, 1, 4, 4, 3, 4]
    assert first.questions[-1].evidence == frozenset({"D2:2"})
    assert (first.dropped_evidence, first.dropped_questions) == (4, 1)
    assert all("LEAK" not in t.text for t in first.turns)


@pytest.mark.parametrize("content", ['{"not": "a list"}', "[]", "not json",
                                     '[{"sample_id": "x", "conversation": {"session_1": []}}]'])
def test_loader_refuses_other_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(locomo.DataError):
        locomo.load(path)


def test_unreadable_session_date_is_refused() -> None:
    with pytest.raises(locomo.DataError, match="unreadable session date"):
        locomo.parse_session_date("yesterday at noon")


def test_recall_any_and_all() -> None:
    answers = [
        Answer(1, frozenset({"a", "b"}), ("a", "x", "y", "z", "w", "b")),  # any@5, all@10
        Answer(2, frozenset({"c"}), ("x",) * 10 + ("c",)),  # found at rank 11: only @20
        Answer(4, frozenset({"d"}), ()),  # nothing found
    ]
    figures = recall(answers, ks=(5, 10, 20))
    assert figures["any@5"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["all@5"] == 0.0
    assert figures["all@10"] == pytest.approx(1 / 3, abs=1e-4)
    assert figures["any@20"] == figures["all@20"] == pytest.approx(2 / 3, abs=1e-4)
    report = recall_report(answers, locomo.CATEGORIES, ks=(10,))
    assert report["per_category"]["temporal"] == {"questions": 1, "any@10": 0.0, "all@10": 0.0}
    assert report["per_category"]["open-domain"]["questions"] == 0


def test_without_data_it_skips_with_a_clear_message(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert main(["--out", str(tmp_path)]) == 0
    assert "skipped: no --data PATH and no $MEMORY_BENCH_DATA" in capsys.readouterr().err
    assert main(["--data", str(tmp_path / "absent.json"), "--out", str(tmp_path)]) == 0
    assert "absent.json does not exist" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


def test_a_file_in_another_format_exits_2(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["--data", str(bad), "--out", str(tmp_path)]) == 2
    assert "not a non-empty JSON list" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--modes", "semantic,fuzzy"], ["--text", "plain,upper"]])
def test_unknown_rows_or_text_variants_exit_2(data_file: Path, tmp_path: Path, capsys,
                                              argv: list[str]) -> None:
    assert main(["--data", str(data_file), "--out", str(tmp_path / "out"), *argv]) == 2
    assert "choose from" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_modes_selects_rows() -> None:
    rows = modes([{"recency_half_life_days": 30.0}, {"priority_weight": 0.5}],
                 ["hybrid", "ranking"])
    assert [m.name for m in rows] == ["hybrid", "hybrid + ranking (recency_half_life_days=30)",
                                      "hybrid + ranking (priority_weight=0.5)"]
    assert rows[2].body == {"mode": "hybrid", "rerank": False, "ranking": {"priority_weight": 0.5}}


def test_readme_block_is_replaced_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\nold table\n{README_END}\noutro\n")
    command = public_command(["--data", "/secret/place/locomo.json", "--sweep"])
    assert command == "python -m loadtest.bench.retrieval --data LOCOMO.json --sweep"
    write_readme("| new |\n", command, tmp_path / "bench-retrieval-x.json", readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{README_END}\noutro\n")
    assert "old table" not in text and "| new |" in text and "/secret" not in text


def test_tables_go_to_the_benchmarks_page_not_the_readme() -> None:
    """``--readme`` rewrites docs/benchmarks/retrieval.md, whose markers must stay there."""
    target = inspect.signature(write_readme).parameters["readme"].default
    assert target == Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "retrieval.md"
    text = target.read_text()
    assert text.count(README_BEGIN) == 1 and text.count(README_END) == 1
    assert text.index(README_BEGIN) < text.index(README_END)
    readme = target.parents[2] / "README.md"
    assert README_BEGIN not in readme.read_text()


def test_end_to_end_on_a_real_stack(data_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    argv = ["--data", str(data_file), "--out", str(out), "--text", "messages,plain,dated",
            "--sweep"]
    assert main(argv) == 0
    [path] = out.glob("bench-retrieval-*.json")
    report = json.loads(path.read_text())
    assert report["data"] | {"sha256": None} == {
        "file": "tiny-locomo.json", "sha256": None, "conversations": 2, "turns": 24,
        "questions": 14, "dropped_evidence_ids": 8, "dropped_questions": 2}
    [run] = report["runs"]
    assert run["embedder"]["dimension"] == 384
    assert run["capabilities"]["modes"] and run["capabilities"]["occurred_at"]
    for variant in ("messages", "plain", "dated"):
        assert run["ingest"][variant]["memories"] == 24
        rows = run["modes"][variant]
        # Every row is measured or skipped with a reason, never silently missing.
        assert {m.name for m in modes([{"recency_half_life_days": 30.0}])} == (
            set(rows) | set(run["skipped"]))
        assert {"semantic", "keyword", "hybrid"} <= set(rows)
        for figures in rows.values():
            assert figures["questions"] == 14 and figures["search"]["searches"] == 14
            assert figures["overall"]["any@20"] == 1.0  # 12 turns per user: all come back
        # The planted paraphrases are found by meaning: the ids map back to the right turns.
        assert rows["semantic"]["overall"]["any@5"] >= 0.8
    if not run["capabilities"]["reranker"]:
        assert "no reranker exported" in run["skipped"]["hybrid + rerank"]
    sweep = run["sweep"]
    # Dense from plain text with keyword from dated text is evaluated too.
    assert list(sweep["combos"]) == ["dense=messages, keyword=messages",
                                     "dense=plain, keyword=plain", "dense=plain, keyword=dated",
                                     "dense=dated, keyword=dated"]
    for combo, variant in (("dense=messages, keyword=messages", "messages"),
                           ("dense=plain, keyword=plain", "plain"),
                           ("dense=dated, keyword=dated", "dated")):
        result = sweep["combos"][combo]
        # The offline fusion at the server's settings is what the hybrid row measured through
        # the API, and the pools alone are what the single-mode rows measured.
        rows = run["modes"][variant]
        assert result["server_policy"] == rows["hybrid"]["overall"]
        assert result["semantic_only"] == rows["semantic"]["overall"]
        assert result["keyword_only"] == rows["keyword"]["overall"]
        assert len(result["grid"]) == len(grid())
        assert result["best"] == result["grid"][0]
        assert all(r["any@10"] <= result["best"]["any@10"] for r in result["grid"])


def test_settings_profiles_parse_and_refuse_what_is_not_a_gateway_setting() -> None:
    assert parse_profile("fp32 query:MEMORY_QUERY_PRECISION=fp32, MEMORY_X=1") == (
        "fp32 query", {"MEMORY_QUERY_PRECISION": "fp32", "MEMORY_X": "1"})
    assert parse_profile("defaults:") == ("defaults", {})
    for bad in ("no label", ":MEMORY_X=1", "x:PATH=/tmp", "x:MEMORY_X"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_profile(bad)


def test_sqlite_and_postgres_side_by_side(data_file: Path, tmp_path: Path,
                                          postgres_server: PostgresServer) -> None:
    """With --store-url both stores answer every question, in turns, with the same recall."""
    out = tmp_path / "results"
    argv = ["--data", str(data_file), "--out", str(out), "--modes", "semantic,keyword,hybrid",
            "--store-url", postgres_server.url()]
    assert main(argv) == 0
    [path] = out.glob("bench-retrieval-*.json")
    [run] = json.loads(path.read_text())["runs"]
    assert run["ingest"]["messages"]["memories"] == 24
    assert run["ingest"]["messages@postgres"]["memories"] == 24
    lite, pg = run["modes"]["messages"], run["modes"]["messages@postgres"]
    assert set(lite) == set(pg) == {"semantic", "keyword", "hybrid"}
    for mode in lite:
        assert pg[mode]["search"]["searches"] == lite[mode]["search"]["searches"] == 14
        assert pg[mode]["overall"] == lite[mode]["overall"], mode
        assert pg[mode]["per_category"] == lite[mode]["per_category"], mode


def test_the_sweep_scores_a_profile_with_that_profiles_fusion(monkeypatch) -> None:
    """A ``--settings`` profile's ``MEMORY_HYBRID_*`` is the fusion its sweep rows evaluate
    as "server settings"; what the environment sets wins, as it does for that gateway."""
    monkeypatch.delenv("MEMORY_HYBRID_SCORE_WEIGHT", raising=False)
    monkeypatch.delenv("MEMORY_HYBRID_RRF_K", raising=False)
    default = server_policy()
    profile = server_policy({"MEMORY_HYBRID_SCORE_WEIGHT": "0", "MEMORY_HYBRID_RRF_K": "20",
                             "MEMORY_SEARCH_SPEAKER_BOOST": "1"})
    assert (profile.score_weight, profile.rrf_k) == (0.0, 20)
    assert profile.semantic_weight == default.semantic_weight
    monkeypatch.setenv("MEMORY_HYBRID_RRF_K", "5")
    assert server_policy({"MEMORY_HYBRID_RRF_K": "20"}).rrf_k == 5
