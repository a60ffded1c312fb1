"""``python -m export embedder`` end to end: versions, idempotency, options, failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from export import triton_config
from export.cli import main
from export.fingerprint import file_sha256
from export.repository import MANIFEST_FILE, STAGING_PREFIX

ROOT = Path(__file__).resolve().parents[2]
# What an export or a validation loads; a no-op run loads none of it.
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers", "optimum", "onnx",
                 "onnxruntime")


def manifest(repo: Path, version: int, model: str = "embedder") -> dict:
    return json.loads((repo / model / str(version) / MANIFEST_FILE).read_text())


def no_staging_left(repo: Path) -> bool:
    return not any(p.name.startswith(STAGING_PREFIX) for p in repo.rglob("*"))


def test_export_writes_a_complete_validated_version(exported_repo: Path, source_dir: Path) -> None:
    version = exported_repo / "embedder" / "1"
    expected = {"model.py", "embedding_runtime.py", "model.onnx", "tokenizer.json", MANIFEST_FILE}
    assert expected <= {p.name for p in version.iterdir()}
    found = manifest(exported_repo, 1)
    assert found["version"] == 1
    assert found["source"]["path"] == str(source_dir)
    assert found["onnx"]["sha256"] == file_sha256(version / "model.onnx")
    assert found["onnx"]["outputs"][-1] == "sentence_embedding"
    assert (found["dimension"], found["max_seq_length"]) == (384, 256)
    fp32 = found["validation"]["fp32"]
    assert fp32["passed"] and fp32["max_abs_diff"] <= 1e-4 and fp32["min_cosine"] >= 0.999
    assert fp32["texts"] == found["validation"]["texts"] >= 16
    # The copied model code is the committed template, byte for byte.
    templates = ROOT / "export" / "triton"
    assert (version / "model.py").read_bytes() == (templates / "embedder_model.py").read_bytes()
    runtime = (version / "embedding_runtime.py").read_bytes()
    assert runtime == (templates / "embedding_runtime.py").read_bytes()
    # Truncation is baked into the version's tokenizer at max_seq_length.
    assert json.loads((version / "tokenizer.json").read_text())["truncation"]["max_length"] == 256
    assert (exported_repo / "embedder" / "config.pbtxt").read_text() == (
        triton_config.python_backend_config()
    )
    assert no_staging_left(exported_repo)


def test_rerun_is_a_fast_no_op_without_torch(exported_repo: Path) -> None:
    before = sorted(
        (p.relative_to(exported_repo), p.stat().st_mtime_ns) for p in exported_repo.rglob("*")
    )
    # Fast because nothing heavy is loaded and nothing is exported or validated: checked by
    # what the run imports and writes, not by a wall-clock bound a busy machine can break.
    script = (
        "import sys; from export.cli import main; "
        f"rc = main(['embedder', '--repository', {str(exported_repo)!r}]); "
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]; "
        "assert not heavy, f'{heavy} imported on the no-op path'; "
        "sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "embedder: up to date (version 1)"
    after = sorted(
        (p.relative_to(exported_repo), p.stat().st_mtime_ns) for p in exported_repo.rglob("*")
    )
    assert after == before


def test_force_writes_version_2_and_keeps_version_1(repo_copy: Path) -> None:
    assert main(["embedder", "--repository", str(repo_copy), "--force"]) == 0
    assert sorted(p.name for p in (repo_copy / "embedder").iterdir() if p.name.isdigit()) == [
        "1",
        "2",
    ]
    first, second = manifest(repo_copy, 1), manifest(repo_copy, 2)
    assert second["version"] == 2
    assert second["fingerprint"] == first["fingerprint"]
    assert second["validation"]["fp32"]["passed"]
    assert no_staging_left(repo_copy)


def test_int8_is_a_new_smaller_version_within_its_bounds(repo_copy: Path) -> None:
    # A change of options is not "up to date": the int8 export becomes version 2.
    assert main(["embedder", "--repository", str(repo_copy), "--quantize", "int8"]) == 0
    fp32_graph = repo_copy / "embedder" / "1" / "model.onnx"
    int8_graph = repo_copy / "embedder" / "2" / "model.onnx"
    assert int8_graph.stat().st_size < fp32_graph.stat().st_size / 3
    ops = {node.op_type for node in onnx.load(str(int8_graph)).graph.node}
    assert "DynamicQuantizeLinear" in ops
    found = manifest(repo_copy, 2)
    assert found["options"]["quantize"] == "int8"
    assert found["fingerprint"] != manifest(repo_copy, 1)["fingerprint"]
    int8 = found["validation"]["int8"]
    assert int8["passed"] and (int8["cosine_bound"], int8["mean_cosine_bound"]) == (0.97, 0.98)
    assert int8["min_cosine"] >= 0.97 and int8["mean_cosine"] >= 0.98
    assert found["validation"]["fp32"]["passed"]  # the fp32 graph is checked before quantising
    assert found["onnx"]["int8_bytes"] < found["onnx"]["fp32_bytes"]


def test_validation_failure_exits_non_zero_and_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    # Real fp32 parity is ~2e-7: a 1e-12 bound must fail.
    assert main(["embedder", "--repository", str(repo), "--atol", "1e-12"]) == 1
    err = capsys.readouterr().err
    assert "ValidationError" in err and "max |diff| <= 1e-12" in err
    assert not any(p.name.isdigit() for p in (repo / "embedder").iterdir())
    assert not (repo / "embedder" / "config.pbtxt").exists()
    assert no_staging_left(repo)


def test_int8_bound_violation_fails(repo_copy: Path) -> None:
    code = main(
        [
            "embedder",
            "--repository",
            str(repo_copy),
            "--quantize",
            "int8",
            "--int8-min-cosine",
            "0.999",
        ]
    )
    assert code == 1
    assert not (repo_copy / "embedder" / "2").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--source", "/nonexistent/model"], "does not exist"),
        (["--tensorrt"], "--tensorrt needs --backend onnxruntime"),
    ],
)
def test_bad_arguments_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["embedder", "--repository", str(tmp_path), *argv]) == 3
    assert message in capsys.readouterr().err


def test_source_that_is_not_a_model_exits_3(tmp_path: Path, capsys) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "README.md").write_text("not a model")
    assert main(["embedder", "--repository", str(tmp_path / "r"), "--source", str(source)]) == 3
    assert "not a sentence-transformers model folder" in capsys.readouterr().err


def test_python_m_export_entry_point(exported_repo: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "export", "embedder", "--repository", str(exported_repo)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "up to date (version 1)" in done.stdout
