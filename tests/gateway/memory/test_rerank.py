"""The rerank candidate pool, and the launcher loading the reranker only when one is exported."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.memory.rerank import RerankPolicy
from gateway.settings import Settings
from gateway.triton import server_from_settings


@pytest.mark.parametrize(("limit", "pool"), [(1, 50), (10, 50), (12, 50), (13, 52), (100, 400)])
def test_pool_is_four_times_the_limit_but_at_least_fifty(limit: int, pool: int) -> None:
    assert RerankPolicy().pool(limit) == pool


def test_pool_settings_are_bounded_to_one_triton_request() -> None:
    """limit <= 100, factor <= 10, min <= 1000: a pool never exceeds max_batch_size 1024."""
    widest = Settings(rerank_pool_factor=10, rerank_pool_min=1000)
    assert RerankPolicy(False, widest.rerank_pool_factor, widest.rerank_pool_min).pool(100) <= 1024
    with pytest.raises(ValueError):
        Settings(rerank_pool_factor=11)


def test_launcher_loads_the_reranker_only_when_it_has_a_version(tmp_path: Path) -> None:
    for folder in ("embedder/1", "reranker/warmup"):
        (tmp_path / folder).mkdir(parents=True)
    settings = Settings(model_repository=tmp_path)
    assert server_from_settings(settings).models == ("embedder",)
    (tmp_path / "reranker" / "1").mkdir()
    assert server_from_settings(settings).models == ("embedder", "reranker")
