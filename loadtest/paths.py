"""Where every benchmark and load test writes its results: one folder, ``loadtest/results/``."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
