"""Start-up, step by step: each resource goes on an ``AsyncExitStack`` the moment it opens.

A step that fails leaves the stack to close what the steps before it opened, in reverse
order, so a failed start releases the key store, the store's in-use lock, the store and every
worker thread (``tests/gateway/test_startup.py`` fails each step in turn). Shutdown is the same
unwinding, in the same order as ever: background tasks, the LLM client, the Triton connector,
migrations, the index spaces, the inference clients, the store, its lock, the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial

from threadpoolctl import threadpool_info, threadpool_limits

from gateway.admission.controller import AdmissionController
from gateway.auth.authenticator import Authenticator
from gateway.errors import GatewayError
from gateway.index.batcher import SearchBatcher
from gateway.index.factory import build_index
from gateway.inference.client import EmbedderClient
from gateway.inference.clip import ClipClient
from gateway.inference.local_encoder import LocalQueryEncoder
from gateway.inference.query_cache import QueryCache
from gateway.inference.remote_versions import RemoteVersions
from gateway.inference.reranker import RerankerClient
from gateway.jobs.compress import CompressPolicy, Summariser
from gateway.jobs.pacing import Pacer
from gateway.jobs.prune import RetentionPolicy
from gateway.jobs.runner import JobRunner
from gateway.jobs.triggers import SizeTrigger
from gateway.memory.dedup import DedupPolicy
from gateway.memory.events import Ingest, build_ingest
from gateway.memory.feed import FeedFollower
from gateway.memory.image_cache import ImageVectorCache
from gateway.memory.image_memories import ImageMemories
from gateway.memory.images import ImageLimits
from gateway.memory.rerank import RerankPolicy
from gateway.memory.search import SearchPolicy
from gateway.memory.service import MemoryService
from gateway.metrics import Metrics, StoreGauges
from gateway.settings import Settings
from gateway.state import GatewayState
from gateway.store.base import KeyTable, Store, VersionTable
from gateway.store.in_use import gateway_use
from gateway.store.postgres.keys import PostgresKeyTable
from gateway.store.postgres.store import PostgresStore, redacted
from gateway.store.sqlite.store import SQLiteStore
from gateway.versions.activation import EmbedderVersions
from gateway.versions.active import ActiveModels
from gateway.versions.clip import ClipVersions
from gateway.versions.control import ModelControl
from gateway.versions.rerankers import RerankerVersions
from gateway.write_first import WriteFirst

log = logging.getLogger("gateway")


@dataclass(frozen=True, slots=True)
class Wiring:
    """What ``create_app`` makes before any start (the middlewares hold these)."""

    settings: Settings
    metrics: Metrics
    admission: AdmissionController
    dedup_policy: DedupPolicy
    authenticator: Authenticator


@dataclass(frozen=True, slots=True)
class Workers:
    """The background work: queued ingest, consolidation jobs and their triggers, gauges."""

    ingest: Ingest
    jobs: JobRunner
    size_trigger: SizeTrigger
    store_gauges: StoreGauges


async def start_gateway(stack: AsyncExitStack, wiring: Wiring) -> GatewayState:
    """Run every step; what each opens is closed by ``stack`` (at shutdown, or at once when a
    later step fails)."""
    settings, metrics = wiring.settings, wiring.metrics
    await open_keys(stack, wiring.authenticator, settings)
    hold_store(stack, settings)
    write_first = WriteFirst(settings.search_write_first_wait_ms / 1000)
    store = await open_store(stack, settings, write_first)
    encoder = open_local_encoder(stack, settings, metrics)
    embedder, reranker = open_inference(stack, settings, metrics)
    service = build_service(stack, settings, store, embedder, reranker, encoder, write_first)
    images = build_images(settings, service, embedder, metrics)
    control = ModelControl(embedder.grpc, retry_after_s=settings.retry_after_s)
    versions = track_versions(stack, settings, service, store, control, wiring.admission)
    clip_versions = track_clip_versions(stack, settings, images, store, control,
                                        wiring.admission)
    feed = await mark_feed(settings, service, versions, clip_versions, metrics)
    await load_index(settings, service, metrics)
    await connect_embedder(stack, versions)
    reranker_versions = await connect_reranker(settings, reranker, store, control)
    await clip_versions.connect()
    workers = build_workers(stack, wiring, service)
    start_workers(stack, workers, feed)
    return GatewayState(
        settings=settings, metrics=metrics, admission=wiring.admission,
        dedup_policy=wiring.dedup_policy, store=store, service=service, versions=versions,
        reranker_versions=reranker_versions, ingest=workers.ingest, jobs=workers.jobs,
        size_trigger=workers.size_trigger, store_gauges=workers.store_gauges, feed=feed,
        images=images, clip_versions=clip_versions)


# -- the steps, in order --------------------------------------------------------------------
def key_table(settings: Settings) -> KeyTable | None:
    """The API keys' table in PostgreSQL when the store is there (every replica reads the
    same keys); None: the SQLite keys file (``MEMORY_DATA_DIR/keys.sqlite3``)."""
    if settings.postgres_url is None:
        return None
    return PostgresKeyTable(settings.postgres_url)


async def open_keys(stack: AsyncExitStack, authenticator: Authenticator,
                    settings: Settings) -> None:
    """The key store (and its worker thread); closed also when opening it fails."""
    stack.push_async_callback(authenticator.close)
    await authenticator.open()
    keys = "PostgreSQL" if settings.postgres_url is not None else settings.keys_path
    log.info("authentication: %s", f"required (API keys in {keys})"
             if settings.auth_required else "off")


def hold_store(stack: AsyncExitStack, settings: Settings) -> None:
    """The shared in-use lock: ``StoreBusy`` while a restore or import runs (a file lock
    beside the SQLite file; PostgreSQL has no file here and is shared by every replica)."""
    if settings.postgres_url is None:
        stack.callback(gateway_use(settings.db_path).release)


async def open_store(stack: AsyncExitStack, settings: Settings,
                     write_first: WriteFirst | None = None) -> Store:
    """The store, migrated: PostgreSQL when ``MEMORY_STORE_URL`` names one, else the SQLite
    file (whose keyword queries pause for ``write_first``'s single writes); its threads (and
    pool) stop also when opening it fails."""
    store: Store
    if settings.postgres_url is not None:
        store = PostgresStore(settings.postgres_url, lexical_index=settings.lexical_index,
                              pool_max=settings.store_pool_size)
        log.info("store: PostgreSQL at %s", redacted(settings.postgres_url))
    else:
        store = SQLiteStore(settings.db_path, synchronous=settings.sqlite_synchronous,
                            lexical_index=settings.lexical_index,
                            feed_poll_s=settings.feed_poll_ms / 1000,
                            write_first=write_first)
    stack.push_async_callback(store.close)
    await store.open()
    return store


def open_local_encoder(stack: AsyncExitStack, settings: Settings,
                       metrics: Metrics) -> LocalQueryEncoder | None:
    """The in-gateway query encoder, unless ``MEMORY_QUERY_ENCODER=triton``."""
    if settings.query_encoder == "triton":
        return None
    encoder = LocalQueryEncoder(settings.model_repository, settings.embedder_model,
                                threads=settings.query_encoder_threads, metrics=metrics,
                                precision=settings.query_precision,
                                int8_fallback=settings.data_dir / "query-int8")
    stack.callback(encoder.close)
    return encoder


def open_inference(stack: AsyncExitStack, settings: Settings,
                   metrics: Metrics) -> tuple[EmbedderClient, RerankerClient]:
    """Triton's clients: one gRPC channel, shared by the embedder and the reranker; the
    embedder also reaches the versions declared remote (``<N>.remote.toml``)."""
    embedder = EmbedderClient(
        settings.triton_grpc_url, settings.embedder_model,
        timeout_s=settings.inference_timeout_s, retry_after_s=settings.retry_after_s,
        metrics=metrics,
        remotes=RemoteVersions(settings.model_repository, settings.embedder_model,
                               metrics=metrics),
    )
    stack.push_async_callback(embedder.close)
    reranker = RerankerClient(
        embedder.grpc, settings.reranker_model, timeout_s=settings.inference_timeout_s,
        retry_after_s=settings.retry_after_s, metrics=metrics,
    )
    return embedder, reranker


def build_images(settings: Settings, service: MemoryService, embedder: EmbedderClient,
                 metrics: Metrics) -> ImageMemories:
    """Image memories over the optional CLIP towers (on the embedder's gRPC channel)."""
    clip = ClipClient(embedder.grpc, settings.clip_image_model, settings.clip_text_model,
                      timeout_s=settings.inference_timeout_s,
                      retry_after_s=settings.retry_after_s, metrics=metrics)
    limits = ImageLimits(settings.image_max_bytes, settings.image_max_pixels)
    cache = ImageVectorCache(service.store, settings.image_cache_mb * 2**20, metrics)
    return ImageMemories(service, clip, limits, rrf_k=settings.image_rrf_k, cache=cache)


def build_service(stack: AsyncExitStack, settings: Settings, store: Store,
                  embedder: EmbedderClient, reranker: RerankerClient,
                  encoder: LocalQueryEncoder | None,
                  write_first: WriteFirst | None = None) -> MemoryService:
    """The memory service over an empty index (filled by ``load_index``)."""
    index = build_index(settings)
    models = ActiveModels(index, SearchBatcher(index, window_s=settings.search_window_ms / 1000),
                          retry_after_s=settings.retry_after_s)
    stack.push_async_callback(close_spaces, models)
    policy = RerankPolicy(settings.rerank_default, settings.rerank_pool_factor,
                          settings.rerank_pool_min)
    return MemoryService(store, index, embedder, reranker=reranker, rerank_policy=policy,
                         models=models, search_policy=SearchPolicy.from_settings(settings),
                         query_cache=QueryCache(settings.query_cache_size),
                         local_encoder=encoder, write_first=write_first)


def track_versions(stack: AsyncExitStack, settings: Settings, service: MemoryService,
                   version_store: VersionTable, control: ModelControl,
                   admission: AdmissionController) -> EmbedderVersions:
    """The embedder's version manager (it runs migrations; closing stops one)."""
    versions = EmbedderVersions(
        service, version_store, control,
        partial(build_index, settings), model=settings.embedder_model,
        repository=settings.model_repository, window_s=settings.search_window_ms / 1000,
        batch_size=settings.reembed_batch, admission=admission,
        query_twin=settings.query_twin,
    )
    stack.push_async_callback(versions.close)
    service.follow_version = versions.follow  # a write refused for a stale version follows
    return versions


def track_clip_versions(stack: AsyncExitStack, settings: Settings, images: ImageMemories,
                        store: Store, control: ModelControl,
                        admission: AdmissionController) -> ClipVersions:
    """The CLIP version manager (it runs CLIP migrations; closing stops one)."""
    clip_versions = ClipVersions(images.clip, store, control,
                                 repository=settings.model_repository,
                                 batch_size=settings.clip_reembed_batch, admission=admission)
    stack.push_async_callback(clip_versions.close)
    return clip_versions


async def mark_feed(settings: Settings, service: MemoryService, versions: EmbedderVersions,
                    clip_versions: ClipVersions, metrics: Metrics) -> FeedFollower | None:
    """A follower of the change feed when the store is shared (not SQLite, unless
    ``MEMORY_FEED_FOLLOW``), positioned before the index loads: nothing committed during
    the load is missed."""
    shared = not isinstance(service.store, SQLiteStore)
    if not (shared if settings.feed_follow is None else settings.feed_follow):
        return None

    async def on_version() -> None:
        await versions.follow()
        await clip_versions.follow()

    feed = FeedFollower(service, service.store, on_version=on_version, metrics=metrics,
                        batch=settings.feed_batch, wait_s=settings.feed_wait_s,
                        retention_s=settings.feed_retention_s)
    log.info("following the change feed from seq %d", await feed.mark())
    return feed


async def load_index(settings: Settings, service: MemoryService, metrics: Metrics) -> None:
    """Gauges on the index, the index built from the store, the compute threads capped."""
    export_index_metrics(metrics, service)
    count = await service.build_index()
    log.info("index built from the store: %d vectors", count)
    limit_compute_threads(settings.compute_threads)


async def connect_embedder(stack: AsyncExitStack, versions: EmbedderVersions) -> None:
    """Pin the active version; without Triton, start anyway and keep trying in the
    background (``/readyz`` says 503 until it is back)."""
    try:
        await versions.connect()
    except GatewayError as exc:
        log.warning("Triton not reachable at start-up (%s); retrying in the background", exc)
        connecting = asyncio.create_task(versions.keep_connected(), name="connect-triton")
        stack.push_async_callback(cancel_tasks, connecting)


async def connect_reranker(settings: Settings, reranker: RerankerClient,
                           version_store: VersionTable,
                           control: ModelControl) -> RerankerVersions:
    """The reranker's versions; pinned now when Triton serves one (searches work without)."""
    reranker_versions = RerankerVersions(reranker, version_store, control,
                                         model=settings.reranker_model,
                                         repository=settings.model_repository)
    if await reranker.available():
        with contextlib.suppress(GatewayError):
            await reranker_versions.connect()
        log.info("reranker %s served; rerank by default: %s", reranker.label,
                 settings.rerank_default)
    return reranker_versions


def build_workers(stack: AsyncExitStack, wiring: Wiring, service: MemoryService) -> Workers:
    """Queued ingest (with its LLM client), the job runner, its size trigger, store gauges."""
    settings, admission = wiring.settings, wiring.admission
    ingest, llm = build_ingest(settings, service, wiring.dedup_policy, admission,
                               wiring.metrics)
    if llm is not None:
        stack.push_async_callback(llm.aclose)
    jobs = JobRunner(service, service.store, wiring.dedup_policy,
                     admission=admission, metrics=wiring.metrics,
                     lease_s=settings.jobs_lease_s, interval_s=settings.jobs_interval_s,
                     compress=CompressPolicy.from_settings(settings),
                     summariser=Summariser(llm),
                     pacer=Pacer(admission.activity, duty=settings.jobs_duty,
                                 max_wait_s=settings.jobs_max_wait_ms / 1000),
                     retention=RetentionPolicy(settings.retention_jobs_days,
                                               settings.retention_events_days,
                                               settings.retention_history_days),
                     prune_interval_s=settings.prune_interval_s)
    size_trigger = SizeTrigger(jobs, settings.jobs_user_size)
    ingest.on_added = size_trigger.note
    gauges = StoreGauges(wiring.metrics, service.store, settings.metrics_refresh_s)
    return Workers(ingest, jobs, size_trigger, gauges)


def start_workers(stack: AsyncExitStack, workers: Workers,
                  feed: FeedFollower | None = None) -> None:
    """The background tasks (and the change feed's follower); shutdown cancels them first."""
    tasks = [asyncio.create_task(workers.ingest.work_forever(), name="ingest-events"),
             asyncio.create_task(workers.jobs.work_forever(), name="jobs"),
             asyncio.create_task(workers.jobs.schedule_forever(), name="job-schedule"),
             asyncio.create_task(workers.jobs.prune_forever(), name="job-prune"),
             asyncio.create_task(workers.size_trigger.watch_forever(), name="job-size-trigger"),
             asyncio.create_task(workers.store_gauges.refresh_forever(), name="store-gauges")]
    if feed is not None:
        tasks.append(asyncio.create_task(feed.follow_forever(), name="change-feed"))
    stack.push_async_callback(cancel_tasks, *tasks)


# -- helpers --------------------------------------------------------------------------------
async def cancel_tasks(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def close_spaces(models: ActiveModels) -> None:
    """A migration's target space, then the active index with its search thread (also when
    no version was ever pinned, as after a start that failed or never reached Triton)."""
    if models.target is not None:
        await models.target.close()
    await models.searcher.close()
    close = getattr(models.index, "close", None)
    if close is not None:
        close()


def export_index_metrics(metrics: Metrics, service: MemoryService) -> None:
    """Gauges read at scrape time from whatever index is active (it changes on a switch)."""

    def stats():
        return service.index.stats()

    metrics.index_size.set_function(lambda: service.index.size())
    metrics.index_graphs.set_function(lambda: stats().graphs)
    metrics.index_bytes.set_function(lambda: stats().bytes)
    metrics.index_graph_vectors.set_function(lambda: stats().graph_vectors)
    metrics.index_builds_pending.set_function(lambda: stats().builds_pending)
    metrics.search_batches.set_function(lambda: service.searcher.stats.mean_batch)
    for stat in ("hits", "misses", "promotions", "evictions", "bytes", "promotion_seconds"):
        metrics.tier.labels(stat).set_function(partial(_tier_stat, service, stat))
    metrics.query_cache.labels("hits").set_function(lambda: service.query_cache.stats.hits)
    metrics.query_cache.labels("misses").set_function(lambda: service.query_cache.stats.misses)


def _tier_stat(service: MemoryService, stat: str) -> float:
    tier = getattr(service.index, "tier", None)
    return float(getattr(tier.stats, stat)) if tier is not None else 0.0


def limit_compute_threads(threads: int) -> None:
    """Cap the BLAS and OpenMP pools the gateway loaded (numpy, faiss) at ``threads``."""
    threadpool_limits(limits=threads)
    apis = sorted({pool["internal_api"] for pool in threadpool_info()})
    log.info("compute threads: %d for %s", threads, ", ".join(apis) or "no thread pools")
