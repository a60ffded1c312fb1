"""``python -m export clip``: export, validate and publish one CLIP model as two towers.

Any Hugging Face ``CLIPModel`` folder or hub id works (a ``preprocessor_config.json`` and a
fast tokenizer beside the weights). Each tower is traced to its own ONNX graph that ends in
the projection and an L2 normalisation, so ``clip_image`` and ``clip_text`` answer unit rows of
one space. The version's own runtime (``clip_runtime.py``: Pillow preprocessing, tokenizer,
onnxruntime) is checked against the PyTorch model with ``CLIPImageProcessor`` on fixed images
and texts; only a pair that passed is renamed into place, both under one version number.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import numpy as np

from . import clip_config as config
from . import repository
from .errors import ExportError, ValidationError
from .fingerprint import EXPORTER_VERSION, file_sha256
from .onnx_export import tool_versions
from .sources import read_json

TEMPLATES = Path(__file__).resolve().parent / "triton"
RUNTIME_FILE = "clip_runtime.py"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
VALIDATION_TEXTS = ("a photo of a dog", "a red picture", "the whiteboard after the meeting",
                    "", "a diagram of the deploy pipeline " * 20)
Log = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class ClipJob:
    source: Path
    repository: Path
    fingerprint: str
    source_sha256: str
    model_id: str
    min_cosine: float = 0.999


def check_source(source: Path) -> None:
    """Fail early, with the reason, on anything that is not a CLIP-family folder."""
    cfg = read_json(source / "config.json")
    if cfg.get("model_type") != "clip" and "CLIPModel" not in (cfg.get("architectures") or []):
        raise ExportError(f"{source} is not a CLIP model (model_type {cfg.get('model_type')!r})")
    if not any((source / name).is_file() for name in WEIGHT_FILES):
        raise ExportError(f"{source} has no weights ({' or '.join(WEIGHT_FILES)})")
    if not (source / "preprocessor_config.json").is_file():
        raise ExportError(f"{source} has no preprocessor_config.json (image preprocessing)")
    if not any((source / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
        raise ExportError(f"{source} has no tokenizer (tokenizer.json or tokenizer_config.json)")


def validation_images() -> list[bytes]:
    """Fixed images of several sizes, aspect ratios and modes (a gradient, a checkerboard)."""
    from PIL import Image

    out = []
    for width, height, mode in ((64, 64, "RGB"), (300, 120, "RGB"), (90, 200, "L"),
                                (33, 47, "RGBA")):
        y, x = np.mgrid[0:height, 0:width]
        rgb = np.stack([(x * 255 // max(1, width - 1)), (y * 255 // max(1, height - 1)),
                        ((x // 8 + y // 8) % 2) * 255], axis=-1).astype(np.uint8)
        image = Image.fromarray(rgb, "RGB").convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def _towers(model: object) -> tuple[object, object]:
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            v = self.model.get_image_features(pixel_values=pixel_values)
            return v / v.norm(dim=-1, keepdim=True)

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            v = self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
            return v / v.norm(dim=-1, keepdim=True)

    return ImageTower().eval(), TextTower().eval()


def _export_graphs(source: Path, image_stage: Path, text_stage: Path) -> tuple[object, object,
                                                                               int]:
    """Trace both towers to ONNX; returns (model, tokenizer, text max length)."""
    import torch
    from transformers import AutoTokenizer, CLIPModel

    model = CLIPModel.from_pretrained(str(source), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source), use_fast=True, local_files_only=True)
    if not tokenizer.is_fast:
        raise ExportError(f"{source}: no fast tokenizer available to write tokenizer.json")
    image_tower, text_tower = _towers(model)
    size = model.config.vision_config.image_size
    max_length = int(model.config.text_config.max_position_embeddings)
    # The tracer warns about shape checks it freezes (image size, positions): expected here.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(image_tower, (torch.zeros(2, 3, size, size),),
                          str(image_stage / "model.onnx"), input_names=["pixel_values"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"pixel_values": {0: "batch"}, "embedding": {0: "batch"}})
        ids = torch.ones(2, 8, dtype=torch.long)
        torch.onnx.export(text_tower, (ids, torch.ones_like(ids)), str(text_stage / "model.onnx"),
                          input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                        "attention_mask": {0: "batch", 1: "tokens"},
                                        "embedding": {0: "batch"}})
    return model, tokenizer, max_length


def _write_tokenizer(tokenizer: object, stage: Path, max_length: int) -> None:
    """tokenizer.json with truncation at the text tower's positions and its pad id."""
    from tokenizers import Tokenizer

    backend: Tokenizer = tokenizer.backend_tokenizer  # type: ignore[attr-defined]
    backend.enable_truncation(max_length=max_length)
    pad_id = tokenizer.pad_token_id  # type: ignore[attr-defined]
    if pad_id is None:  # some CLIP tokenizers pad with the end-of-text token
        pad_id = tokenizer.eos_token_id  # type: ignore[attr-defined]
    backend.enable_padding(pad_id=int(pad_id or 0))
    backend.save(str(stage / "tokenizer.json"))


def _load_runtime(stage: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"clip_runtime_{stage.name}",
                                                  stage / RUNTIME_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=1)


def _validate(source: Path, model: object, tokenizer: object, image_stage: Path,
              text_stage: Path, min_cosine: float) -> dict:
    """The version's runtime against PyTorch with the reference processor; worst cosines."""
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor

    images = validation_images()
    processor = CLIPImageProcessor.from_pretrained(str(source), local_files_only=True)
    pil = [Image.open(io.BytesIO(data)).convert("RGB") for data in images]
    pixels = torch.tensor(np.stack(processor(pil)["pixel_values"]))
    max_length = int(model.config.text_config.max_position_embeddings)  # type: ignore[attr-defined]
    encoded = tokenizer(list(VALIDATION_TEXTS), padding=True, truncation=True,  # type: ignore[operator]
                        max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        ref_images = model.get_image_features(pixel_values=pixels).numpy()  # type: ignore[attr-defined]
        ref_texts = model.get_text_features(  # type: ignore[attr-defined]
            input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).numpy()
    runtime = _load_runtime(image_stage)
    got_images = runtime.ClipRuntime(image_stage, "image").embed_images(images)
    got_texts = _load_runtime(text_stage).ClipRuntime(text_stage, "text").embed_texts(
        list(VALIDATION_TEXTS))
    worst = {"image": float(_cosines(got_images, ref_images).min()),
             "text": float(_cosines(got_texts, ref_texts).min())}
    report = {"min_cosine": min_cosine, "worst": worst, "images": len(images),
              "texts": len(VALIDATION_TEXTS),
              "passed": all(v >= min_cosine for v in worst.values())}
    if not report["passed"]:
        raise ValidationError(f"CLIP runtime disagrees with PyTorch: worst cosines {worst} "
                               f"< {min_cosine}")
    return report


def run(job: ClipJob, log: Log) -> tuple[int, dict]:
    """Build, validate and publish both towers; returns (version, manifest)."""
    image_dir = job.repository / config.IMAGE_MODEL
    text_dir = job.repository / config.TEXT_MODEL
    with repository.staging(image_dir) as image_stage, repository.staging(text_dir) as text_stage:
        started = time.perf_counter()
        model, tokenizer, max_length = _export_graphs(job.source, image_stage, text_stage)
        _write_tokenizer(tokenizer, text_stage, max_length)
        shutil.copy2(job.source / "preprocessor_config.json", image_stage)
        for stage in (image_stage, text_stage):
            shutil.copy2(TEMPLATES / RUNTIME_FILE, stage / RUNTIME_FILE)
        log(f"exported both towers ({time.perf_counter() - started:.1f} s)")
        started = time.perf_counter()
        report = _validate(job.source, model, tokenizer, image_stage, text_stage,
                           job.min_cosine)
        log(f"validated: worst cosine image {report['worst']['image']:.6f}, text "
            f"{report['worst']['text']:.6f} ({time.perf_counter() - started:.1f} s)")
        version = repository.next_version([image_dir, text_dir])
        dimension = int(model.config.projection_dim)  # type: ignore[attr-defined]
        for name, stage in ((config.IMAGE_MODEL, image_stage), (config.TEXT_MODEL, text_stage)):
            manifest = {
                "model": name, "version": version, "space": f"clip:{version}",
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "fingerprint": job.fingerprint, "exporter_version": EXPORTER_VERSION,
                "source": {"model": job.model_id, "path": str(job.source),
                           "sha256": job.source_sha256},
                "tools": tool_versions(), "dimension": dimension,
                "onnx": {"sha256": file_sha256(stage / "model.onnx")},
                "text_max_length": max_length, "validation": report,
            }
            shutil.copy2(TEMPLATES / "clip_model.py", stage / "model.py")
            repository.write_manifest(stage, manifest)
        repository.publish(image_stage, image_dir, version)
        repository.publish(text_stage, text_dir, version)
    for name, folder in ((config.IMAGE_MODEL, image_dir), (config.TEXT_MODEL, text_dir)):
        repository.write_files(folder, config.files(name))
    return version, {"dimension": dimension, "validation": report}
