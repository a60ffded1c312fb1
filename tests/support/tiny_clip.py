"""A tiny CLIP built and trained in-process, because no CLIP-family weights are offline.

``CLIPModel`` at toy sizes (2 layers per tower, width 64, 32x32 images in 8x8 patches) over
all-MiniLM-L6-v2's WordPiece tokenizer, trained contrastively for a few dozen steps on
solid-colour pictures and captions naming the colour ("a red picture"), so text search really
finds the matching image. Saved with ``save_pretrained`` plus a ``preprocessor_config.json``,
i.e. laid out like a hub CLIP folder (config.json, model.safetensors, tokenizer, processor).
"""

from __future__ import annotations

import io
import random
from pathlib import Path

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220),
    "yellow": (240, 220, 40), "black": (15, 15, 15), "white": (245, 245, 245),
    "purple": (130, 40, 170), "orange": (250, 140, 20),
}
CAPTIONS = ("a {} picture", "something {}", "{}", "a photo that is mostly {}")
IMAGE_SIZE = 32
MAX_LENGTH = 32


def caption(colour: str, template: int = 0) -> str:
    return CAPTIONS[template % len(CAPTIONS)].format(colour)


def picture(colour: str, seed: int = 0, size: int = 48, fmt: str = "PNG") -> bytes:
    """A ``size`` x ``size`` image of ``colour`` with a little noise, encoded as ``fmt``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.array(COLOURS[colour], dtype=np.int16)
    pixels = np.clip(base + rng.integers(-25, 26, size=(size, size, 3)), 0, 255)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(out, format=fmt)
    return out.getvalue()


def build(target: Path, *, steps: int = 60, seed: int = 0) -> Path:
    """Create, train and save the model into ``target``; returns ``target``."""
    import numpy as np
    import torch
    from PIL import Image
    from transformers import BertTokenizerFast, CLIPConfig, CLIPImageProcessor, CLIPModel

    from export.cli import default_source

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tokenizer = BertTokenizerFast.from_pretrained(str(default_source()), local_files_only=True,
                                                  model_max_length=MAX_LENGTH)
    config = CLIPConfig(
        text_config={"vocab_size": tokenizer.vocab_size, "hidden_size": 64,
                     "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "max_position_embeddings": MAX_LENGTH, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.cls_token_id,
                     "eos_token_id": tokenizer.sep_token_id},
        vision_config={"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "image_size": IMAGE_SIZE, "patch_size": 8},
        projection_dim=32,
    )
    model = CLIPModel(config)
    processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                   crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    names = list(COLOURS)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        order = rng.sample(names, len(names))
        images = [Image.open(io.BytesIO(picture(c, seed=step * 31 + i)))
                  for i, c in enumerate(order)]
        texts = [caption(c, rng.randrange(len(CAPTIONS))) for c in order]
        pixels = torch.tensor(np.stack(processor(images)["pixel_values"]))
        encoded = tokenizer(texts, padding=True, return_tensors="pt")
        out = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"],
                    pixel_values=pixels, return_loss=True)
        optimiser.zero_grad()
        out.loss.backward()
        optimiser.step()
    model.eval()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(target))
    tokenizer.save_pretrained(str(target))
    processor.save_pretrained(str(target))
    return target
