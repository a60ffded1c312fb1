"""Pick the index from settings; GPU modules are imported only when chosen or detected."""

from __future__ import annotations

import logging

from gateway.index.graph import GraphBuilder
from gateway.index.partitioned import AnnPolicy, PartitionedIndex
from gateway.index.tiers import CudaDevice, Device, HostDevice, HotTier
from gateway.settings import Settings

log = logging.getLogger("gateway.index")


def gpu_available() -> bool:
    """cupy and cuVS import, and a CUDA device is visible."""
    try:
        import cupy
        import cuvs  # noqa: F401

        return bool(cupy.cuda.runtime.getDeviceCount() > 0)
    except Exception:  # any import or driver failure means "no GPU path"
        return False


def graph_builder(backend: str) -> GraphBuilder | None:
    if backend == "auto":
        backend = "cagra" if gpu_available() else "hnsw"
    if backend == "exact":
        return None
    if backend == "cagra":
        from gateway.index.cagra import CagraBuilder

        return CagraBuilder()
    from gateway.index.hnsw import HnswBuilder

    return HnswBuilder()


def hot_tier(settings: Settings) -> HotTier | None:
    choice = settings.hot_tier
    if choice == "auto":
        choice = "cuda" if gpu_available() else "off"
    if choice == "off" or settings.vram_budget_mb <= 0:
        return None
    device: Device = CudaDevice() if choice == "cuda" else HostDevice()
    return HotTier(device, settings.vram_budget_mb * 1024 * 1024,
                   promote_after=settings.hot_tier_promote_after)


def build_index(settings: Settings) -> PartitionedIndex:
    builder = graph_builder(settings.index_backend)
    tier = hot_tier(settings)
    log.info("index: exact partitions, %s graphs past %d vectors, hot tier: %s",
             builder.name if builder else "no", settings.ann_threshold,
             f"{tier.device.name} {settings.vram_budget_mb} MB" if tier else "off")
    policy = AnnPolicy(threshold=settings.ann_threshold, recall_bound=settings.ann_recall_bound,
                       rebuild_drift=settings.ann_rebuild_drift,
                       rebuild_min_rows=settings.ann_rebuild_min_rows)
    ram = settings.ram_budget_mb * 1024 * 1024 or None
    return PartitionedIndex(builder, policy, tier=tier, ram_budget_bytes=ram)
