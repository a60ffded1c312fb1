"""A second embedder version in a different embedding space, as an operator would export it:
version 1 with its output reversed and cut to 256 dimensions (shared by version-swap tests),
or reversed only: another space of the same size."""

from __future__ import annotations

import shutil
from pathlib import Path

OTHER_SPACE = '''

# Test fixture: a different embedding space (reversed, cut) on top of the real model.
_original_embed = EmbeddingRuntime.embed


def _other_space(self, texts):
    vectors = _original_embed(self, texts)[:, ::-1][:, :{size}]
    return l2_normalise(np.ascontiguousarray(vectors))


EmbeddingRuntime.embed = _other_space
'''


def add_other_space_version(repo: Path, version: str = "2", *, same_size: bool = False
                            ) -> None:
    """What an operator does: export a new version into the running server's repository
    (256-d, or with ``same_size`` as many dimensions as version 1)."""
    target = repo / "embedder" / version
    shutil.copytree(repo / "embedder" / "1", target)
    runtime = target / "embedding_runtime.py"
    size = "" if same_size else "256"
    runtime.write_text(runtime.read_text() + OTHER_SPACE.replace("{size}", size))
