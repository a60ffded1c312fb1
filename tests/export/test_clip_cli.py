"""``python -m export clip`` end to end on the tiny CLIP: both towers under one version, the
runtime's vectors against PyTorch's, up-to-date runs, and sources it must refuse."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.tiny_clip import COLOURS, caption, picture

from export import clip_config
from export.cli import main
from export.repository import MANIFEST_FILE, STAGING_PREFIX


def runtime(repo: Path, model: str, tower: str) -> object:
    folder = repo / model / "1"
    spec = importlib.util.spec_from_file_location(f"clip_runtime_test_{tower}",
                                                  folder / "clip_runtime.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ClipRuntime(folder, tower)


def test_both_towers_share_one_version_and_one_space(clip_repo: Path, clip_dir: Path) -> None:
    import torch
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    manifests = [json.loads((clip_repo / m / "1" / MANIFEST_FILE).read_text())
                 for m in (clip_config.IMAGE_MODEL, clip_config.TEXT_MODEL)]
    assert {m["space"] for m in manifests} == {"clip:1"}
    assert all(m["validation"]["passed"] for m in manifests)
    for model in (clip_config.IMAGE_MODEL, clip_config.TEXT_MODEL):
        config = (clip_repo / model / "config.pbtxt").read_text()
        assert config == clip_config.python_backend_config(model)
        assert f'name: "{model}"' in config and 'name: "EMBEDDING"' in config
    images = runtime(clip_repo, clip_config.IMAGE_MODEL, "image")
    texts = runtime(clip_repo, clip_config.TEXT_MODEL, "text")
    names = list(COLOURS)
    got_images = images.embed_images([picture(c, seed=11, size=70) for c in names])
    got_texts = texts.embed_texts([caption(c, 2) for c in names])
    np.testing.assert_allclose(np.linalg.norm(got_images, axis=1), 1.0, atol=1e-5)
    model = CLIPModel.from_pretrained(str(clip_dir)).eval()
    processor = CLIPImageProcessor.from_pretrained(str(clip_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(clip_dir))
    with torch.no_grad():
        pixels = processor([Image.open(io.BytesIO(picture(c, seed=11, size=70)))
                            for c in names], return_tensors="pt")["pixel_values"]
        reference = model.get_image_features(pixel_values=pixels).numpy()
        encoded = tokenizer([caption(c, 2) for c in names], padding=True, return_tensors="pt")
        reference_text = model.get_text_features(
            input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).numpy()
    for got, ref in ((got_images, reference), (got_texts, reference_text)):
        ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        assert (np.sum(got * ref, axis=1) > 0.999).all()
    # one space: every caption is nearest to its own colour's picture
    assert (np.argmax(got_texts @ got_images.T, axis=1) == np.arange(len(names))).all()


def test_a_second_run_is_up_to_date_and_force_writes_version_two(
        clip_repo: Path, clip_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "model_repository"
    shutil.copytree(clip_repo, repo)
    argv = ["clip", "--model", str(clip_dir), "--repository", str(repo)]
    assert main(argv) == 0
    assert "up to date (version 1)" in capsys.readouterr().out
    assert main([*argv, "--force"]) == 0
    for model in (clip_config.IMAGE_MODEL, clip_config.TEXT_MODEL):
        assert sorted(p.name for p in (repo / model).iterdir() if p.name.isdigit()) == ["1", "2"]
    assert not any(p.name.startswith(STAGING_PREFIX) for p in repo.rglob("*"))


def test_a_folder_that_is_not_clip_is_refused(clip_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    bert = tmp_path / "bert"
    shutil.copytree(clip_dir, bert)
    config = json.loads((bert / "config.json").read_text())
    (bert / "config.json").write_text(json.dumps(config | {"model_type": "bert",
                                                           "architectures": ["BertModel"]}))
    repo = tmp_path / "model_repository"
    assert main(["clip", "--model", str(bert), "--repository", str(repo)]) == 3
    assert "is not a CLIP model" in capsys.readouterr().err
    blind = tmp_path / "no-processor"
    shutil.copytree(clip_dir, blind)
    (blind / "preprocessor_config.json").unlink()
    assert main(["clip", "--model", str(blind), "--repository", str(repo)]) == 3
    assert "no preprocessor_config.json" in capsys.readouterr().err
    assert not (repo / clip_config.IMAGE_MODEL).exists() or not any(
        p.name.isdigit() for p in (repo / clip_config.IMAGE_MODEL).iterdir())
    assert main(["clip", "--model", str(tmp_path / "nowhere"), "--repository", str(repo)]) == 3


def test_only_the_image_tower_batches(clip_repo: Path) -> None:
    """Pictures are embedded in bulk; the text tower embeds one search query at a time, so
    it has no dynamic batcher (its idle wait could hold a lone query ~500 ms)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    def config(model: str) -> model_config_pb2.ModelConfig:
        text = (clip_repo / model / "config.pbtxt").read_text()
        return text_format.Parse(text, model_config_pb2.ModelConfig())

    assert config(clip_config.IMAGE_MODEL).HasField("dynamic_batching")
    assert not config(clip_config.TEXT_MODEL).HasField("dynamic_batching")
    assert config(clip_config.TEXT_MODEL).max_batch_size == clip_config.MAX_BATCH_SIZE
