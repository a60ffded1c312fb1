"""``export embedder --source DIR`` with another architecture: an MPNet model like
all-mpnet-base-v2 (built tiny here), exported, validated and served by the real Triton."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from support import make_triton
from support.tiny_sentence_encoder import DIMENSION, MAX_SEQ_LENGTH, build

from export.cli import main
from export.repository import MANIFEST_FILE
from export.validate import reference_embeddings

TEXTS = ("The user prefers window seats.", "Hi", "日本語のテキスト", "deploy failed " * 80)


@pytest.fixture(scope="module")
def mpnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("tiny-mpnet"))


@pytest.fixture(scope="module")
def mpnet_repo(mpnet_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("mpnet-export") / "model_repository"
    assert main(["embedder", "--source", str(mpnet_dir), "--repository", str(repo)]) == 0
    return repo


def test_source_folder_is_exported_with_its_own_dimension_and_inputs(
    mpnet_repo: Path, mpnet_dir: Path
) -> None:
    manifest = json.loads((mpnet_repo / "embedder" / "1" / MANIFEST_FILE).read_text())
    assert manifest["source"]["path"] == str(mpnet_dir)
    assert (manifest["dimension"], manifest["max_seq_length"]) == (DIMENSION, MAX_SEQ_LENGTH)
    # MPNet takes no token_type_ids: the runtime must feed only what the graph declares.
    assert manifest["onnx"]["inputs"] == ["input_ids", "attention_mask"]
    assert manifest["validation"]["fp32"]["passed"]
    assert manifest["validation"]["fp32"]["max_abs_diff"] <= 1e-4


def test_same_source_again_is_up_to_date(
    mpnet_repo: Path, mpnet_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["embedder", "--source", str(mpnet_dir), "--repository", str(mpnet_repo)]) == 0
    assert capsys.readouterr().out.strip() == "embedder: up to date (version 1)"
    assert not (mpnet_repo / "embedder" / "2").exists()


def test_triton_serves_the_exported_source_like_sentence_transformers(
    mpnet_repo: Path, mpnet_dir: Path, tmp_path: Path
) -> None:
    with make_triton(tmp_path, repository=mpnet_repo) as triton:
        client = grpcclient.InferenceServerClient(triton.grpc_url)
        try:
            batch = np.array([[t.encode()] for t in TEXTS], dtype=object)
            tensor = grpcclient.InferInput("TEXT", list(batch.shape), "BYTES")
            tensor.set_data_from_numpy(batch)
            served = client.infer("embedder", [tensor]).as_numpy("EMBEDDING")
        finally:
            client.close()
    reference = reference_embeddings(mpnet_dir, TEXTS)
    assert served.shape == (len(TEXTS), DIMENSION)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(served, reference, atol=1e-4)
