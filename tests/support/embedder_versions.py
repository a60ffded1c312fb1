"""A second embedder version in a different embedding space, as an operator would export it:
version 1 with its output reversed and cut to 256 dimensions (shared by version-swap tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

OTHER_SPACE = '''

# Test fixture: a different embedding space (reversed, 256-d) on top of the real model.
_original_embed = EmbeddingRuntime.embed


def _other_space(self, texts):
    vectors = _original_embed(self, texts)[:, ::-1][:, :256]
    return l2_normalise(np.ascontiguousarray(vectors))


EmbeddingRuntime.embed = _other_space
'''


def add_other_space_version(repo: Path, version: str = "2") -> None:
    """What an operator does: export a new version into the running server's repository."""
    target = repo / "embedder" / version
    shutil.copytree(repo / "embedder" / "1", target)
    runtime = target / "embedding_runtime.py"
    runtime.write_text(runtime.read_text() + OTHER_SPACE)
