"""Prometheus metrics, one registry per app so several apps (tests) never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.index_size = Gauge(
            "memory_index_vectors", "Vectors held by the search index", registry=self.registry
        )
        self.index_graphs = Gauge(
            "memory_index_graphs", "Partitions answered by an ANN graph", registry=self.registry
        )
        self.index_graph_vectors = Gauge(
            "memory_index_graph_vectors", "Vectors covered by ANN graphs", registry=self.registry
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
        self.triton_batch_texts = Histogram(
            "memory_triton_request_texts", "Texts per gateway request to Triton (its batch rows)",
            ["model"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
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
        self.deadline_drops = Counter(
            "memory_deadline_drops_total",
            "Requests dropped because their deadline passed (stage: queue, before_inference)",
            ["stage"], registry=self.registry,
        )
