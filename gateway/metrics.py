"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

if TYPE_CHECKING:
    from gateway.store.base import Store

log = logging.getLogger("gateway.metrics")
USER_SIZE_QUANTILES = (0.5, 0.9, 0.99, 1.0)  # of memories per user; 1.0 is the largest user

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # process_resident_memory_bytes, process_cpu_seconds_total, open fds (Linux /proc)
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "memory_http_requests_total", "HTTP requests by route and status",
            ["method", "route", "status"], registry=self.registry,
        )
        self.request_latency = Histogram(
            "memory_http_request_seconds", "HTTP request latency by route",
            ["method", "route"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.triton_latency = Histogram(
            "memory_triton_request_seconds", "Latency of gateway calls to Triton",
            ["model", "outcome"], buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.query_encoder_latency = Histogram(
            "memory_query_encoder_seconds", "Latency of search-query embedding in the gateway "
            "(gateway.inference.local_encoder)", buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.index_size = Gauge(
            "memory_index_vectors", "Vectors held by the search index", registry=self.registry
        )
        self.index_graphs = Gauge(
            "memory_index_graphs", "Partitions answered by an ANN graph", registry=self.registry
        )
        self.index_graph_vectors = Gauge(
            "memory_index_graph_vectors", "Vectors covered by ANN graphs", registry=self.registry
        )
        self.index_builds_pending = Gauge(
            "memory_index_builds_pending",
            "ANN graph builds queued or running (0: every big partition's graph is current)",
            registry=self.registry,
        )
        self.index_bytes = Gauge(
            "memory_index_bytes", "RAM held by index matrices and graphs", registry=self.registry
        )
        self.tier = Gauge(
            "memory_hot_tier", "Hot (GPU) tier: hits, misses, promotions, evictions, bytes, "
            "promotion_seconds (cumulative)", ["stat"], registry=self.registry,
        )
        self.search_batches = Gauge(
            "memory_search_mean_batch", "Mean searches per backend call (micro-batching)",
            registry=self.registry,
        )
        self.query_cache = Gauge(
            "memory_query_cache", "Query embedding cache lookups since start (hits, misses)",
            ["outcome"], registry=self.registry,
        )
        # The change feed (gateway/memory/feed.py), on a replica that follows it.
        self.feed_applied_seq = Gauge(
            "memory_feed_applied_seq", "Last change-feed seq this replica's index has applied",
            registry=self.registry,
        )
        self.feed_lag_changes = Gauge(
            "memory_feed_lag_changes", "Committed changes this replica's index has not applied",
            registry=self.registry,
        )
        self.feed_lag_seconds = Gauge(
            "memory_feed_lag_seconds", "Age of the oldest change not applied yet (0: caught up)",
            registry=self.registry,
        )
        self.feed_reloads = Counter(
            "memory_feed_reloads_total", "Index reloads from the store (the feed was trimmed "
            "past this replica's position)", registry=self.registry,
        )
        self.triton_batch_texts = Histogram(
            "memory_triton_request_texts", "Texts per gateway request to Triton (its batch rows)",
            ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        # Remote embedding versions (gateway/inference/remote.py): one series per version.
        self.remote_embed_latency = Histogram(
            "memory_remote_embed_seconds", "Latency of each attempt at a remote embedding "
            "server, by version and outcome (ok, error, timeout)", ["version", "outcome"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )
        self.remote_embed_texts = Histogram(
            "memory_remote_embed_texts", "Texts per request to a remote embedding server",
            ["version"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.remote_embed_retries = Counter(
            "memory_remote_embed_retries_total", "Retried attempts at a remote embedding server",
            ["version"], registry=self.registry,
        )
        # Image search's copy of users' CLIP vectors (gateway/memory/image_cache.py).
        self.image_cache = Counter(
            "memory_image_cache_total", "Image-vector reads of searches: hit (the copy was "
            "current), filled (read from the store and kept), bypassed (filters the copy "
            "cannot apply, or the cache off)", ["outcome"], registry=self.registry,
        )
        # Admission control (gateway/admission/): one series per route class.
        self.admission_in_flight = Gauge(
            "memory_admission_in_flight", "Requests admitted and running, by route class",
            ["route_class"], registry=self.registry,
        )
        self.admission_queue_depth = Gauge(
            "memory_admission_queue_depth", "Requests waiting for admission, by route class",
            ["route_class"], registry=self.registry,
        )
        self.admission_limit = Gauge(
            "memory_admission_limit", "Concurrency limit, by route class",
            ["route_class"], registry=self.registry,
        )
        self.admission_shed = Counter(
            "memory_admission_shed_total", "Requests refused with 429, by route class and reason",
            ["route_class", "reason"], registry=self.registry,
        )
        self.ingest_results = Counter(
            "memory_ingest_results_total",
            "Memories written by adds, by event (ADD, UPDATE, NOOP, DELETE) and source "
            "(raw: as given, deduplicated; llm: an extraction's decision)",
            ["event", "source"], registry=self.registry,
        )
        self.llm_failures = Counter(
            "memory_llm_failures_total",
            "LLM extractions that failed after their retries, by reason", ["reason"],
            registry=self.registry,
        )
        self.jobs = Counter(
            "memory_jobs_total", "Consolidation jobs finished, by kind and status",
            ["kind", "status"], registry=self.registry,
        )
        self.job_seconds = Histogram(
            "memory_job_seconds", "Duration of finished consolidation jobs, by kind", ["kind"],
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600), registry=self.registry,
        )
        self.jobs_merged = Counter(
            "memory_jobs_merged_total", "Memories merged into another by consolidation jobs",
            registry=self.registry,
        )
        # Compress jobs increment this for each source memory they archive under a summary.
        self.jobs_archived = Counter(
            "memory_jobs_archived_total",
            "Memories archived by consolidation jobs (the sources of a summary)",
            registry=self.registry,
        )
        # The store's size, recounted in the background (StoreGauges), never at scrape time.
        self.store_memories = Gauge(
            "memory_store_memories", "Memories held by the store, archived ones included",
            registry=self.registry,
        )
        self.store_users = Gauge(
            "memory_store_users", "Users with at least one memory in the store",
            registry=self.registry,
        )
        self.user_memories = Gauge(
            "memory_user_memories",
            "Memories per user: quantiles over users (quantile 1 is the largest user)",
            ["quantile"], registry=self.registry,
        )
        self.deadline_drops = Counter(
            "memory_deadline_drops_total",
            "Requests dropped because their deadline passed (stage: queue, before_inference)",
            ["stage"], registry=self.registry,
        )


class StoreGauges:
    """Keeps the store gauges current: a count on a store reader thread every ``every_s``, so
    a scrape of /metrics only reads values already set (no query, no lock, no wait)."""

    def __init__(self, metrics: Metrics, store: Store, every_s: float) -> None:
        self.metrics = metrics
        self.store = store
        self.every_s = every_s
        self.refreshes = 0  # completed recounts (tests wait on it)

    async def refresh(self) -> None:
        found = await self.store.census(USER_SIZE_QUANTILES)
        self.metrics.store_memories.set(found.memories)
        self.metrics.store_users.set(found.users)
        for q, value in found.per_user.items():
            self.metrics.user_memories.labels(str(q)).set(value)
        self.refreshes += 1

    async def refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a failed count leaves the last values; the next one retries
                log.exception("store gauges: count failed")
            await asyncio.sleep(self.every_s)
