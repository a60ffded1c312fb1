"""The remote-version tests' real server (``loadtest.infinity``: infinity-emb in its own venv,
serving the MiniLM folder with its ONNX engine), and a skip with the reason where it is not
installed."""

from __future__ import annotations

import pytest

from loadtest.infinity import (
    BINARY,
    DIM,
    EXPORTER,
    SERVED_NAME,
    VENV,
    InfinityServer,
    declare_remote,
    minilm_folder,
)

__all__ = ["DIM", "SERVED_NAME", "InfinityServer", "declare_remote", "infinity_or_skip",
           "minilm_folder"]


def infinity_or_skip() -> None:
    if not BINARY.is_file():
        pytest.skip(f"infinity-emb is not installed in {VENV}: run `make install-infinity` "
                    "(make test does)")
    if not EXPORTER.is_file():  # a venv made before the ONNX engine: its pins are missing
        pytest.skip(f"optimum (infinity-emb's ONNX engine) is not installed in {VENV}: run "
                    "`make install-infinity` (make test does)")
