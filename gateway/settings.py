"""All configuration, read once from the environment (prefix ``MEMORY_``) or a ``.env`` file.

No other module reads ``os.environ``: build a ``Settings`` and pass it down.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


def is_loopback(host: str) -> bool:
    """Whether a bind address is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMORY_", env_file=".env", extra="ignore")

    # HTTP gateway
    host: str = "127.0.0.1"
    port: int = Field(8080, validation_alias="GATEWAY_PORT")
    max_body_bytes: int = 16 * 1024 * 1024
    # A request body must arrive within body_timeout_s of its headers and, after
    # body_grace_s, at no less than body_min_bytes_per_s on average (else 408 and the
    # connection closed): uvicorn has no body-read timeout (gateway/api/body_deadline.py).
    body_timeout_s: float = Field(60.0, gt=0)
    body_min_bytes_per_s: float = Field(1024.0, ge=0)  # 0 = no minimum rate
    body_grace_s: float = Field(5.0, ge=0)
    # A request's headers must be complete this long after its connection or its first byte,
    # else 408 and the connection closed (gateway/api/header_deadline.py; httptools only).
    header_timeout_s: float = Field(10.0, gt=0)
    # With authentication off, the Host names served besides the loopback ones (127.0.0.1,
    # localhost, [::1], any port): a web page that rebinds its name to 127.0.0.1 gets 421
    # (gateway/api/hosts.py). JSON list: MEMORY_ALLOWED_HOSTS='["memory.local"]'.
    allowed_hosts: list[str] = []
    # The interactive docs and the schema (/docs, /redoc, /openapi.json); false: 404.
    docs: bool = True
    # Browsers may call the API from these origins (CORS); empty = no cross-origin access.
    # JSON list in the environment: MEMORY_CORS_ALLOW_ORIGINS='["https://app.example"]'.
    cors_allow_origins: list[str] = []
    # API keys (gateway/auth/, `python -m gateway.keys`): "required" or "off"; unset means
    # off while bound to a loopback address and required otherwise, so the service never
    # listens beyond this machine unauthenticated unless MEMORY_AUTH=off says so.
    auth: Literal["required", "off"] | None = None
    keys_file: str = "keys.sqlite3"  # in data_dir, apart from the memories
    api_key: SecretStr | None = None  # what `agent-memory models|jobs` send (operator scope)

    # Durable store
    data_dir: Path = ROOT / "data"
    db_file: str = "memories.sqlite3"
    # FULL: a commit survives power loss, not only a process crash (WAL + NORMAL does not).
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "FULL"
    # postgresql://user:password@host:port/database: memories, history, jobs, events and API
    # keys live in that PostgreSQL database instead of the SQLite files above (several
    # gateways can share it); unset: SQLite in data_dir (docs/operations.md, "PostgreSQL").
    store_url: SecretStr | None = None
    store_pool_size: int = Field(10, ge=1, le=200)  # PostgreSQL connections per gateway
    # Replicas (gateway/memory/feed.py): follow the store's change feed so other gateways'
    # writes reach this one's vector index. None: on when the store is shared (PostgreSQL);
    # true also for gateways sharing one SQLite file. A wait for news ends after feed_wait_s
    # (the bound when a notification is missed); SQLite has none and polls every
    # feed_poll_ms. Changes older than feed_retention_s are trimmed (a follower that was away
    # longer reloads its index from the store).
    feed_follow: bool | None = None
    feed_wait_s: float = Field(1.0, gt=0, le=60)
    feed_poll_ms: float = Field(50.0, gt=0, le=10_000)
    feed_batch: int = Field(500, ge=1, le=10_000)
    feed_retention_s: float = Field(86_400.0, ge=60)

    # Triton
    model_repository: Path = ROOT / "model_repository"
    triton_managed: bool = True  # start the bundled tritonserver with the gateway
    triton_host: str = "127.0.0.1"
    triton_http_port: int = 8000
    triton_grpc_port: int = 8001
    triton_metrics_port: int = 8002
    triton_log_dir: Path = ROOT / "logs"
    triton_start_timeout_s: float = 120.0
    embedder_model: str = "embedder"
    # Optional cross-encoder (loaded when model_repository/reranker has a version). Reranked
    # searches score max(limit * factor, min) vector hits in one request (<= 1024 rows).
    reranker_model: str = "reranker"
    rerank_default: bool = False  # rerank searches that do not say, when a reranker is served
    rerank_pool_factor: int = Field(4, ge=1, le=10)
    rerank_pool_min: int = Field(50, ge=1, le=1000)
    # Image memories (docs/images.md): the CLIP towers exported by `python -m export clip`,
    # loaded when both have a version; without them image routes answer 409. An image in a
    # request is refused past image_max_bytes (decoded) or image_max_pixels (width x height,
    # checked before decoding: no decompression bombs). Text search fuses the text and the
    # CLIP list by reciprocal rank with constant image_rrf_k.
    clip_image_model: str = "clip_image"
    clip_text_model: str = "clip_text"
    image_max_bytes: int = Field(8 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    image_max_pixels: int = Field(16_000_000, ge=1024, le=100_000_000)
    image_rrf_k: int = Field(60, ge=0, le=1000)
    # RAM for copies of users' CLIP vectors that image search reuses while the user's
    # memories are unchanged (gateway/memory/image_cache.py); 0 reads the store every search.
    image_cache_mb: int = Field(256, ge=0, le=1_048_576)
    clip_reembed_batch: int = Field(32, ge=1, le=1024)  # pictures per request re-embedding
    # Search (gateway/memory/search.py). hybrid: dense and BM25 keyword candidate pools of
    # max(limit * pool_factor, pool_min) each, fused by weighted reciprocal rank ("rrf") or a
    # normalised score blend; the dense list weighs semantic_weight, the keyword list 1 - w.
    # Defaults chosen by `make bench-retrieval --sweep` on the dev set
    # (docs/benchmarks/retrieval.md, "How the fusion defaults were chosen").
    search_mode: Literal["hybrid", "semantic", "keyword"] = "hybrid"
    hybrid_fusion: Literal["rrf", "blend"] = "rrf"
    hybrid_semantic_weight: float = Field(0.4, ge=0.0, le=1.0)
    hybrid_rrf_k: int = Field(10, ge=0, le=1000)
    hybrid_pool_factor: int = Field(3, ge=1, le=20)
    hybrid_pool_min: int = Field(40, ge=1, le=1000)
    # rrf: each list's min-max normalised score added, s / (k + 1) per unit (fusion.py); 0 = off
    hybrid_score_weight: float = Field(0.0, ge=0.0, le=10.0)
    # Hybrid search: a query naming one speaker multiplies that speaker's memories' fused
    # scores by this (gateway/memory/speakers.py); 1 = off.
    search_speaker_boost: float = Field(1.5, ge=1.0, le=10.0)
    # Hybrid search: a message is pulled this share of the way toward the best fused score of
    # another message of its session (same occurred_at) in the pool (gateway/memory/
    # sessions.py), never past it; 0 = off.
    search_session_weight: float = Field(0.5, ge=0.0, le=1.0)
    # While a single write (one add, edit or delete) is in flight, a search waits before its
    # next step (query encoding, keyword query, vector search) until no such write is left, at
    # most this long per step (gateway/memory/write_first.py); 0 = off.
    search_write_first_wait_ms: float = Field(100.0, ge=0.0, le=1000.0)
    # Off: writes skip the keyword index; keyword search answers 409, hybrid runs semantic.
    lexical_index: bool = True
    lexical_date_weight: float = Field(1.0, ge=0.0, le=10.0)  # "8 May 2023" vs text; 0 = text only
    # A message's neighbouring messages (gateway/memory/conversation.py) vs its text; 0 = off.
    lexical_context_weight: float = Field(0.3, ge=0.0, le=10.0)
    # Ranking policy (gateway/memory/ranking.py); 0 turns each part off.
    ranking_recency_half_life_days: float = Field(0.0, ge=0.0, le=36_500.0)
    ranking_priority_weight: float = Field(0.0, ge=0.0, le=1.0)
    inference_timeout_s: float = 10.0
    # Query embeddings kept per (model version, text): a repeated query skips Triton; 0 = off.
    query_cache_size: int = Field(4096, ge=0, le=1_000_000)
    # Embed search queries with the batcher-free twin of the embedder (gateway.inference.
    # query_model) when the launcher made one; false: queries share the batching model.
    query_twin: bool = True
    # "auto": embed search queries in the gateway with the active version's own files when it
    # can read them and they agree with Triton (gateway.inference.local_encoder); "triton":
    # always ask Triton. Writes always go to Triton.
    query_encoder: Literal["auto", "triton"] = "auto"
    query_encoder_threads: int = Field(1, ge=1, le=64)  # ONNX Runtime intra-op threads
    # What the gateway's query encoder runs: "int8", a per-channel int8 copy of the version's
    # graph (gateway.inference.int8_query; 2.3x faster, same dev-set recall), or "fp32".
    query_precision: Literal["int8", "fp32"] = "int8"
    retry_after_s: int = 2

    # Admin API (model versions): with authentication, admin-scope keys only; with it off,
    # loopback clients only unless admin_allow_remote.
    admin_enabled: bool = True
    admin_allow_remote: bool = False
    # Web console at /console (gateway/console/): on by default; a signed-in session lasts
    # console_session_s seconds (kept in the gateway's memory: a restart signs everyone out).
    console: bool = True
    console_session_s: float = Field(8 * 3600.0, gt=0)
    reembed_batch: int = 128  # memories per Triton request while re-embedding

    # Index: "auto" = CAGRA graphs on a visible GPU with cuVS, faiss HNSW graphs on CPU
    index_backend: Literal["auto", "exact", "hnsw", "cagra"] = "auto"
    ann_threshold: int = 20_000  # live vectors before a partition gets an ANN graph
    ann_recall_bound: float = 0.95  # recall@10 a graph must reach on held-out queries
    ann_rebuild_drift: float = 0.05  # share of changed rows that triggers a graph rebuild,
    ann_rebuild_min_rows: int = Field(4096, ge=0)  # once at least this many rows changed
    search_window_ms: float = 1.0  # micro-batching window under load
    # Threads for the gateway's own maths (numpy BLAS, faiss OpenMP). One: the gateway shares a
    # small CPU with Triton, and spinning thread pools fighting each other cost more than a
    # second thread gains on per-user matrices (measured: make bench-latency).
    compute_threads: int = Field(1, ge=1, le=256)

    # Admission control (gateway/admission/): bounded concurrency + a bounded priority queue per
    # route class; beyond it 429 + Retry-After. False keeps the counting, never waits or sheds.
    admission_enabled: bool = True
    admission_ingest_limit: int = 4  # requests running at once (a batch may embed 1000 texts)
    admission_ingest_queue: int = 16
    admission_search_limit: int = 16
    admission_search_queue: int = 32
    admission_admin_limit: int = 8
    admission_admin_queue: int = 16
    admission_max_wait_ms: float = 250.0  # longest wait in a queue before 429
    # Adaptive limits (AIMD): keep each class's p90 service time under its target by moving
    # its limit between admission_min_limit and the configured limit; 0 = fixed limit.
    admission_ingest_target_ms: float = 0.0
    admission_search_target_ms: float = 0.0
    admission_admin_target_ms: float = 0.0
    admission_min_limit: int = 1
    admission_retry_after_s: int = 1
    admission_tenant_share: float = 0.5  # share of a class one tenant may hold; 0 = off
    admission_tenant_rate: float = 0.0  # requests/s per tenant and route class; 0 = off
    # Default request deadlines per route class (X-Deadline-Ms overrides); 0 = none.
    deadline_ingest_ms: float = 30_000.0
    deadline_search_ms: float = 5_000.0
    deadline_admin_ms: float = 10_000.0
    # Hot tier: busy partitions copied to GPU memory. "auto" = "cuda" when a GPU is usable,
    # else off; "host" runs the CPU twin (same policy, numpy copies) for tests and debugging.
    hot_tier: Literal["auto", "off", "host", "cuda"] = "auto"
    vram_budget_mb: int = 1024
    # Warm tier: RAM for index partitions; 0 = hold every partition (loaded at start-up).
    # With a budget, partitions load from the store on first search and the least recently
    # used are evicted past it.
    ram_budget_mb: int = 0
    hot_tier_promote_after: int = 2  # searches of a non-resident partition before promotion

    # Ingest (gateway/memory/dedup.py): an add that repeats a memory of its scope (same
    # normalised text, or a near duplicate among the dedup_candidates nearest vectors with
    # cosine >= dedup_min_cosine) updates or keeps that memory instead of adding another.
    # dedup_lexical=false: the cosine alone decides (measured: far more false merges).
    dedup_enabled: bool = True  # the default for requests that do not say "dedup"
    dedup_min_cosine: float = Field(0.3, ge=-1.0, le=1.0)
    dedup_candidates: int = Field(16, ge=1, le=256)
    dedup_lexical: bool = True
    # LLM extraction (infer: true) through an OpenAI-compatible chat-completions endpoint
    # (gateway/memory/extraction/); unset base URL or model: infer answers 422.
    llm_base_url: str | None = None  # e.g. http://localhost:8000/v1
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(30.0, gt=0)
    llm_attempts: int = Field(3, ge=1, le=10)  # per LLM call, with exponential backoff
    llm_backoff_s: float = Field(1.0, ge=0)
    # When extraction fails: "raw" stores the messages as raw memories now; "queue" keeps
    # them in the event table and retries later (ingest_queue_*), raw after the last attempt.
    llm_on_failure: Literal["raw", "queue"] = "raw"
    ingest_queue_attempts: int = Field(5, ge=1, le=100)
    ingest_queue_backoff_s: float = Field(30.0, ge=0)  # doubles after each failed attempt
    # Consolidation jobs (gateway/jobs/): expire, merge and compress over every user every
    # jobs_interval_s (0 = only on request, POST /v1/jobs); a running job's lease, renewed
    # after each user.
    jobs_interval_s: float = Field(0.0, ge=0)
    # A user whose stored memories reach jobs_user_size gets a merge (and compress) job of its
    # own, queued in the background (gateway/jobs/triggers.py); 0 = off. The default is the
    # size at which a user's partition gets an ANN graph (ann_threshold).
    jobs_user_size: int = Field(20_000, ge=0)
    # The store gauges of /metrics (memories, users, per-user sizes) are recounted this often.
    metrics_refresh_s: float = Field(15.0, gt=0)
    jobs_lease_s: float = Field(60.0, gt=0)
    # A job works in short slices (gateway/jobs/pacing.py): before each it waits while client
    # requests are in flight, at most jobs_max_wait_ms, and it is busy at most jobs_duty of
    # the time.
    jobs_duty: float = Field(0.5, gt=0, le=1)
    jobs_max_wait_ms: float = Field(100.0, ge=0)
    # Queued or running jobs one tenant may hold (POST /v1/jobs answers 429 beyond it; an
    # equal pending job is returned instead of a new one). Scheduled jobs are not counted.
    jobs_max_pending: int = Field(16, ge=1)
    # Retention, enforced by the scheduled `prune` job every prune_interval_s (0 = never):
    # finished jobs, finished ingest events, and the history of memories deleted that many
    # days ago (a live memory's history is always kept). 0 days = keep forever.
    retention_jobs_days: float = Field(30.0, ge=0)
    retention_events_days: float = Field(30.0, ge=0)
    retention_history_days: float = Field(90.0, ge=0)
    prune_interval_s: float = Field(3600.0, ge=0)
    # The compress job (gateway/jobs/compress.py): a user's memories with priority at most
    # compress_max_priority (the default priority: nobody marked them important) that happened
    # over compress_min_age_days ago, within the user's oldest compress_fraction of such
    # memories, are grouped (k-means, about compress_group_size a cluster; a member whose
    # cosine to its cluster's centroid is below compress_min_cosine stays alone) and folded.
    compress_max_priority: int = Field(5, ge=0, le=10)
    compress_min_age_days: float = Field(30.0, ge=0)
    compress_fraction: float = Field(0.5, gt=0, le=1)
    compress_group_size: int = Field(6, ge=2)
    compress_min_cosine: float = Field(0.0, ge=-1, le=1)

    @field_validator("store_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("MEMORY_STORE_URL must be a postgresql:// URL (unset: SQLite)")
        return value

    @property
    def postgres_url(self) -> str | None:
        """The PostgreSQL store's URL, None when the store is SQLite."""
        return None if self.store_url is None else self.store_url.get_secret_value()

    @property
    def auth_required(self) -> bool:
        if self.auth is not None:
            return self.auth == "required"
        return not is_loopback(self.host)

    @property
    def keys_path(self) -> Path:
        return self.data_dir / self.keys_file

    @property
    def db_path(self) -> Path:
        return self.data_dir / self.db_file

    @property
    def triton_grpc_url(self) -> str:
        return f"{self.triton_host}:{self.triton_grpc_port}"
