"""``python -m export reranker`` end to end on the tiny cross-encoder: parity, versions, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export import reranker_config
from export.cli import main
from export.fingerprint import file_sha256
from export.repository import MANIFEST_FILE, STAGING_PREFIX
from export.rerank_validate import GROUPS, candidate_scores, compare, reference_scores

ROOT = Path(__file__).resolve().parents[2]
# What an export or a validation loads; a no-op run loads none of it.
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers", "optimum", "onnx",
                 "onnxruntime")


def manifest(repo: Path, version: int) -> dict:
    return json.loads((repo / "reranker" / str(version) / MANIFEST_FILE).read_text())


def no_staging_left(repo: Path) -> bool:
    return not any(p.name.startswith(STAGING_PREFIX) for p in repo.rglob("*"))


@pytest.fixture
def reranker_copy(reranker_repo: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model_repository"
    shutil.copytree(reranker_repo, copy)
    return copy


def test_export_writes_a_complete_validated_version(
    reranker_repo: Path, cross_encoder_dir: Path
) -> None:
    version = reranker_repo / "reranker" / "1"
    expected = {"model.py", "rerank_runtime.py", "model.onnx", "tokenizer.json", MANIFEST_FILE}
    assert expected <= {p.name for p in version.iterdir()}
    found = manifest(reranker_repo, 1)
    assert found["version"] == 1 and found["model"] == "reranker"
    assert found["source"]["path"] == str(cross_encoder_dir)
    assert found["onnx"]["sha256"] == file_sha256(version / "model.onnx")
    # A BERT cross-encoder: the pair's segment ids are a graph input, one logit comes out.
    assert found["onnx"]["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert found["onnx"]["outputs"] == ["logits"]
    assert found["max_length"] == 128  # the model's own limit (its positions, its tokenizer)
    fp32 = found["validation"]["fp32"]
    assert fp32["passed"] and fp32["max_abs_diff"] <= 1e-4 and fp32["discordant_pairs"] == 0
    assert fp32["pairs"] == sum(len(p) for _, p in GROUPS) >= 16
    templates = ROOT / "export" / "triton"
    assert (version / "model.py").read_bytes() == (templates / "reranker_model.py").read_bytes()
    runtime = (version / "rerank_runtime.py").read_bytes()
    assert runtime == (templates / "rerank_runtime.py").read_bytes()
    tokenizer = json.loads((version / "tokenizer.json").read_text())
    assert tokenizer["truncation"]["max_length"] == 128
    assert (reranker_repo / "reranker" / "config.pbtxt").read_text() == (
        reranker_config.python_backend_config()
    )
    assert no_staging_left(reranker_repo)


def test_validation_pairs_exercise_truncation(reranker_repo: Path) -> None:
    from export.validate import load_runtime

    version = reranker_repo / "reranker" / "1"
    runtime = load_runtime(version, "rerank_runtime.py").RerankRuntime(version)
    queries = [q for q, passages in GROUPS for _ in passages]
    passages = [p for _, group in GROUPS for p in group]
    lengths = [len(e.ids) for e in runtime.encode(queries, passages)]
    assert max(lengths) == 128 and min(lengths) < 16


def test_trained_scores_are_meaningful(reranker_repo: Path) -> None:
    """The exported tiny model puts the on-topic passage first: what the gateway tests use."""
    from support.tiny_cross_encoder import TOPICS, passage, query

    groups = tuple((query(topic, 3), tuple(passage(t, 2) for t in TOPICS)) for topic in TOPICS)
    scores = candidate_scores(reranker_repo / "reranker" / "1", groups).reshape(len(TOPICS), -1)
    assert list(np.argmax(scores, axis=1)) == list(range(len(TOPICS)))


def test_rerun_is_a_fast_no_op_without_torch(reranker_repo: Path, cross_encoder_dir: Path) -> None:
    before = sorted((p, p.stat().st_mtime_ns) for p in reranker_repo.rglob("*"))
    script = (
        "import sys; from export.cli import main; "
        f"rc = main(['reranker', '--model', {str(cross_encoder_dir)!r}, "
        f"'--repository', {str(reranker_repo)!r}]); "
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]; "
        "assert not heavy, f'{heavy} imported on the no-op path'; sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reranker: up to date (version 1)"
    assert sorted((p, p.stat().st_mtime_ns) for p in reranker_repo.rglob("*")) == before


def test_force_writes_version_2(reranker_copy: Path, cross_encoder_dir: Path) -> None:
    argv = ["reranker", "--model", str(cross_encoder_dir), "--repository", str(reranker_copy)]
    assert main([*argv, "--force"]) == 0
    assert sorted(p.name for p in (reranker_copy / "reranker").iterdir() if p.name.isdigit()) == [
        "1", "2"]
    assert manifest(reranker_copy, 2)["fingerprint"] == manifest(reranker_copy, 1)["fingerprint"]
    # Another truncation length is another version, not "up to date".
    assert main([*argv, "--max-length", "64"]) == 0
    assert manifest(reranker_copy, 3)["max_length"] == 64
    assert manifest(reranker_copy, 3)["validation"]["fp32"]["passed"]
    assert no_staging_left(reranker_copy)


def test_validation_failure_exits_1_and_publishes_nothing(
    tmp_path: Path, cross_encoder_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    argv = ["reranker", "--model", str(cross_encoder_dir), "--repository", str(repo)]
    assert main([*argv, "--atol", "1e-12"]) == 1  # real parity is ~2e-6
    err = capsys.readouterr().err
    assert "ValidationError" in err and "max |diff| <= 1e-12" in err
    assert not any(p.name.isdigit() for p in (repo / "reranker").iterdir())
    assert not (repo / "reranker" / "config.pbtxt").exists()
    assert no_staging_left(repo)


def test_a_different_truncation_is_caught(reranker_repo: Path, cross_encoder_dir: Path) -> None:
    """The reference truncating at 32 tokens must not validate a version truncating at 128."""
    result = compare("fp32", reference_scores(cross_encoder_dir, max_length=32),
                     candidate_scores(reranker_repo / "reranker" / "1"), atol=1e-4)
    assert not result.passed and result.max_abs_diff > 1e-3


def test_a_ranking_swap_fails_even_within_atol() -> None:
    reference = np.array([1.0, 0.99995, -2.0, 0.5, 0.4, 3.0, 2.0, 1.0, 0.0], dtype=np.float32)
    candidate = reference.copy()
    candidate[:2] = [0.99996, 0.99999]  # within atol, but the first query's order flips
    groups = (("q1", ("a", "b", "c")), ("q2", ("d", "e")), ("q3", ("f", "g", "h", "i")))
    result = compare("fp32", reference, candidate, atol=1e-4, groups=groups)
    assert result.max_abs_diff <= 1e-4
    assert result.discordant_pairs == 1 and not result.passed


def _fake_model(root: Path, labels: int) -> Path:
    root.mkdir()
    config = {"architectures": ["BertForSequenceClassification"],
              "id2label": {str(i): f"LABEL_{i}" for i in range(labels)}}
    (root / "config.json").write_text(json.dumps(config))
    (root / "model.safetensors").write_bytes(b"not really")
    (root / "tokenizer.json").write_text("{}")
    return root


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("/nonexistent/model", "is not a model folder"),
        ("two-labels", "not a single-logit cross-encoder"),
    ],
)
def test_bad_models_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str, message: str
) -> None:
    if model == "two-labels":
        model = str(_fake_model(tmp_path / "nli", labels=2))
    assert main(["reranker", "--model", model, "--repository", str(tmp_path / "r")]) == 3
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r" / "reranker").exists()


def test_hub_ids_come_from_the_cache_or_fail_clearly(
    tmp_path: Path, cross_encoder_dir: Path
) -> None:
    """A cached hub id resolves without network; an uncached one offline exits 3, clearly."""
    snapshot = tmp_path / "hub" / "models--acme--tiny-reranker" / "snapshots" / "abc123"
    shutil.copytree(cross_encoder_dir, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"))
    resolve = ("from export.sources import resolve_model; "
               "print(resolve_model('acme/tiny-reranker'))")
    done = subprocess.run([sys.executable, "-c", resolve], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == snapshot
    done = subprocess.run(
        [sys.executable, "-m", "export", "reranker", "--model", "acme/not-cached",
         "--repository", str(tmp_path / "r")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 3
    assert "cannot fetch 'acme/not-cached'" in done.stderr and "local folder" in done.stderr


@pytest.mark.parametrize(("extra", "reranker_line"), [([], False), (["RERANKER=/m/ce"], True)])
def test_make_export_runs_the_reranker_only_when_given(
    extra: list[str], reranker_line: bool
) -> None:
    done = subprocess.run(["make", "-n", "export", *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "-m export embedder" in done.stdout
    assert ("-m export reranker --model /m/ce" in done.stdout) is reranker_line
