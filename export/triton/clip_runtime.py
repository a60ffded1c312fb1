"""CLIP towers on ONNX Runtime: images or texts in, L2-normalised rows of one space out.

Copied verbatim into every ``clip_image`` and ``clip_text`` version folder next to
``model.py``, and the exporter's validation imports that very copy, so "validated" means the
preprocessing, tokenizer, graph and normalisation Triton runs. Stdlib, numpy, Pillow,
tokenizers and onnxruntime only: it must import inside the Triton python-backend stub.

Image preprocessing follows ``CLIPImageProcessor`` (read from the version's
``preprocessor_config.json``): RGB, shortest edge resized (bicubic), centre crop, rescale,
normalise with the model's mean and std.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image
from tokenizers import Tokenizer

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
PROCESSOR_FILE = "preprocessor_config.json"
OUTPUT_NAME = "embedding"
DEFAULT_INNER_BATCH = 32
# A decoded image larger than this is refused before resizing (the gateway bounds it lower).
MAX_PIXELS = 64_000_000


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _size(value: object, key: str) -> int:
    if isinstance(value, dict):
        return int(value.get(key) or value.get("height") or value["shortest_edge"])
    return int(value)  # type: ignore[call-overload]


class ImageProcessor:
    """``CLIPImageProcessor``'s steps, on Pillow and numpy."""

    def __init__(self, config: dict) -> None:
        self.shortest_edge = _size(config.get("size", 224), "shortest_edge")
        crop = config.get("crop_size", self.shortest_edge)
        self.crop_h = _size(crop, "height")
        self.crop_w = int(crop.get("width", self.crop_h)) if isinstance(crop, dict) else self.crop_h
        self.resample = int(config.get("resample", 3))
        self.rescale = float(config.get("rescale_factor", 1 / 255))
        self.mean = np.asarray(config.get("image_mean", [0.4815, 0.4578, 0.4082]), np.float32)
        self.std = np.asarray(config.get("image_std", [0.2686, 0.2613, 0.2758]), np.float32)

    def __call__(self, data: bytes) -> np.ndarray:
        """``[3, crop_h, crop_w]`` float32 from encoded image bytes; ValueError if unreadable."""
        try:
            opened = Image.open(io.BytesIO(data))
            if opened.width * opened.height > MAX_PIXELS:
                raise ValueError(f"image of {opened.width}x{opened.height} pixels is too large")
            image = opened.convert("RGB")
        except (OSError, Image.DecompressionBombError) as exc:
            raise ValueError(f"not a readable image: {exc}") from exc
        width, height = image.size
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
        size = (new_short, new_long) if width <= height else (new_long, new_short)
        pixels = np.asarray(image.resize(size, resample=self.resample), dtype=np.float32)
        top = max(0, (pixels.shape[0] - self.crop_h) // 2)
        left = max(0, (pixels.shape[1] - self.crop_w) // 2)
        pixels = pixels[top:top + self.crop_h, left:left + self.crop_w]
        pixels = (pixels * self.rescale - self.mean) / self.std
        return np.ascontiguousarray(pixels.transpose(2, 0, 1), dtype=np.float32)


class ClipRuntime:
    """One tower of an exported CLIP: ``tower`` is "image" or "text"."""

    def __init__(self, version_dir: Path, tower: str, *, intra_op_threads: int = 0,
                 inner_batch: int = DEFAULT_INNER_BATCH) -> None:
        if tower not in ("image", "text"):
            raise ValueError(f"tower must be 'image' or 'text', not {tower!r}")
        self.version_dir, self.tower = Path(version_dir), tower
        self.inner_batch = max(1, int(inner_batch))
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.version_dir / MODEL_FILE), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.dimension = int(self.session.get_outputs()[0].shape[-1])
        if tower == "image":
            config = json.loads((self.version_dir / PROCESSOR_FILE).read_text("utf-8"))
            self.processor = ImageProcessor(config)
        else:
            self.tokenizer = Tokenizer.from_file(str(self.version_dir / TOKENIZER_FILE))
            if self.tokenizer.truncation is None:
                raise ValueError(f"{self.version_dir / TOKENIZER_FILE} has no truncation set")
            self.pad_id = int((self.tokenizer.padding or {}).get("pad_id", 0))
            self.tokenizer.no_padding()

    def pixels(self, data: bytes) -> np.ndarray:
        """One image's model input (ValueError when it cannot be read)."""
        return self.processor(data)

    def embed_pixels(self, pixels: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((len(pixels), self.dimension), dtype=np.float32)
        for start in range(0, len(pixels), self.inner_batch):
            chunk = np.stack(pixels[start:start + self.inner_batch])
            (out[start:start + len(chunk)],) = self.session.run([OUTPUT_NAME],
                                                                {"pixel_values": chunk})
        return l2_normalise(out)

    def embed_images(self, images: Sequence[bytes]) -> np.ndarray:
        """``(len(images), dimension)`` float32, unit norm, in input order."""
        return self.embed_pixels([self.pixels(data) for data in images])

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dimension)`` float32, unit norm, in input order."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        ids = [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.inner_batch):
            chunk = order[start:start + self.inner_batch]
            width = max(len(ids[i]) for i in chunk)
            input_ids = np.full((len(chunk), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                input_ids[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1
            (out[chunk],) = self.session.run([OUTPUT_NAME], {"input_ids": input_ids,
                                                             "attention_mask": mask})
        return l2_normalise(out)
