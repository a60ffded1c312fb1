"""Where a model comes from: a local folder, or a Hugging Face hub id resolved to a folder.

Light on purpose (json and huggingface_hub, no torch): the CLI hashes the resolved folder for
its up-to-date check before anything heavy is imported. A hub id is looked up in the local
cache first, so an already fetched model re-exports without network.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ExportError

# What a cross-encoder needs: config, tokenizer files, weights (no ONNX/OpenVINO copies).
HUB_PATTERNS = [
    "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "vocab.txt", "merges.txt", "vocab.json", "*.model", "added_tokens.json",
    "preprocessor_config.json",  # a CLIP's image preprocessing
    "model.safetensors", "pytorch_model.bin",
]


def resolve_model(name: str) -> Path:
    """``name`` as a local model folder, else as a hub id fetched into the hub cache."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ExportError(f"{name} is not a model folder (and not a hub id like org/name)")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except LocalEntryNotFoundError:
        pass  # not cached yet: fetch it
    except ValueError as exc:  # not a valid repo id
        raise ExportError(f"{name!r} is neither a folder nor a hub id: {exc}") from exc
    try:
        return Path(snapshot_download(name, allow_patterns=HUB_PATTERNS))
    except (OSError, ValueError) as exc:  # offline, unknown repo, HTTP errors
        raise ExportError(
            f"cannot fetch {name!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
            "download it where the hub is reachable and pass the local folder"
        ) from exc


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ExportError(f"{path} is not a JSON object")
    return data
