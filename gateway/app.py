"""The app factory: settings in, a FastAPI app out; resources live in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from threadpoolctl import threadpool_info, threadpool_limits

from gateway.admission import Admission, AdmissionController
from gateway.api import admin, events, health, jobs, memories
from gateway.api.errors import COMMON_ERRORS, error_responses, install_error_handlers
from gateway.api.mem0 import router as mem0_router
from gateway.api.middleware import BodyLimit, RequestMetrics
from gateway.api.security import (
    CORS_EXPOSED,
    CORS_HEADERS,
    CORS_METHODS,
    RequestContext,
)
from gateway.auth.authenticator import Authenticator
from gateway.auth.middleware import Authenticate
from gateway.errors import GatewayError
from gateway.index.batcher import SearchBatcher
from gateway.index.factory import build_index
from gateway.inference import EmbedderClient, RerankerClient
from gateway.inference.local_encoder import LocalQueryEncoder
from gateway.inference.query_cache import QueryCache
from gateway.jobs.compress import CompressPolicy, Summariser
from gateway.jobs.pacing import Pacer
from gateway.jobs.runner import JobRunner
from gateway.jobs.triggers import SizeTrigger
from gateway.memory.dedup import DedupPolicy
from gateway.memory.events import build_ingest
from gateway.memory.rerank import RerankPolicy
from gateway.memory.search import SearchPolicy
from gateway.memory.service import MemoryService
from gateway.metrics import Metrics, StoreGauges
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.in_use import gateway_use
from gateway.store.jobs import JobStore
from gateway.store.versions import VersionStore
from gateway.versions.activation import EmbedderVersions
from gateway.versions.active import ActiveModels
from gateway.versions.control import ModelControl
from gateway.versions.rerankers import RerankerVersions

log = logging.getLogger("gateway")


def _export_index_metrics(metrics: Metrics, service: MemoryService) -> None:
    """Gauges read at scrape time from whatever index is active (it changes on a switch)."""

    def stats():  # noqa: ANN202
        return service.index.stats()

    metrics.index_size.set_function(lambda: service.index.size())
    metrics.index_graphs.set_function(lambda: stats().graphs)
    metrics.index_bytes.set_function(lambda: stats().bytes)
    metrics.index_graph_vectors.set_function(lambda: stats().graph_vectors)
    metrics.search_batches.set_function(lambda: service.searcher.stats.mean_batch)
    for stat in ("hits", "misses", "promotions", "evictions", "bytes", "promotion_seconds"):
        metrics.tier.labels(stat).set_function(partial(_tier_stat, service, stat))


def _tier_stat(service: MemoryService, stat: str) -> float:
    tier = getattr(service.index, "tier", None)
    return float(getattr(tier.stats, stat)) if tier is not None else 0.0


def limit_compute_threads(threads: int) -> None:
    """Cap the BLAS and OpenMP pools the gateway loaded (numpy, faiss) at ``threads``."""
    threadpool_limits(limits=threads)
    apis = sorted({pool["internal_api"] for pool in threadpool_info()})
    log.info("compute threads: %d for %s", threads, ", ".join(apis) or "no thread pools")


def local_encoder(settings: Settings, metrics: Metrics) -> LocalQueryEncoder | None:
    """The in-gateway query encoder, unless ``MEMORY_QUERY_ENCODER=triton``."""
    if settings.query_encoder == "triton":
        return None
    return LocalQueryEncoder(settings.model_repository, settings.embedder_model,
                             threads=settings.query_encoder_threads, metrics=metrics)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    authenticator = Authenticator(settings.keys_path, required=settings.auth_required)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await authenticator.open()
        log.info("authentication: %s", f"required (API keys in {settings.keys_path})"
                 if settings.auth_required else "off")
        in_use = gateway_use(settings.db_path)  # StoreBusy while a restore or import runs
        store = Store(settings.db_path, synchronous=settings.sqlite_synchronous,
                      lexical_index=settings.lexical_index)
        await store.open()
        embedder = EmbedderClient(
            settings.triton_grpc_url, settings.embedder_model,
            timeout_s=settings.inference_timeout_s, retry_after_s=settings.retry_after_s,
            metrics=metrics,
        )
        window_s = settings.search_window_ms / 1000
        index = build_index(settings)
        reranker = RerankerClient(
            embedder.grpc, settings.reranker_model, timeout_s=settings.inference_timeout_s,
            retry_after_s=settings.retry_after_s, metrics=metrics,
        )
        policy = RerankPolicy(settings.rerank_default, settings.rerank_pool_factor,
                              settings.rerank_pool_min)
        models = ActiveModels(index, SearchBatcher(index, window_s=window_s),
                              retry_after_s=settings.retry_after_s)
        service = MemoryService(store, index, embedder, reranker=reranker, rerank_policy=policy,
                                models=models, search_policy=SearchPolicy.from_settings(settings),
                                query_cache=QueryCache(settings.query_cache_size),
                                local_encoder=local_encoder(settings, metrics))
        version_store = VersionStore(store)
        control = ModelControl(embedder.grpc, retry_after_s=settings.retry_after_s)
        versions = EmbedderVersions(
            service, version_store, control,
            partial(build_index, settings), model=settings.embedder_model,
            repository=settings.model_repository, window_s=window_s,
            batch_size=settings.reembed_batch, admission=app.state.admission,
            query_twin=settings.query_twin,
        )
        _export_index_metrics(metrics, service)
        metrics.query_cache.labels("hits").set_function(lambda: service.query_cache.stats.hits)
        metrics.query_cache.labels("misses").set_function(
            lambda: service.query_cache.stats.misses)
        count = await service.build_index()
        log.info("index built from the store: %d vectors", count)
        limit_compute_threads(settings.compute_threads)
        connecting: asyncio.Task[None] | None = None
        try:
            await versions.connect()
        except GatewayError as exc:  # start anyway: /readyz says 503 until Triton is back
            log.warning("Triton not reachable at start-up (%s); retrying in the background",
                        exc)
            connecting = asyncio.create_task(versions.keep_connected(), name="connect-triton")
        reranker_versions = RerankerVersions(reranker, version_store, control,
                                             model=settings.reranker_model,
                                             repository=settings.model_repository)
        if await reranker.available():
            with contextlib.suppress(GatewayError):
                await reranker_versions.connect()
            log.info("reranker %s served; rerank by default: %s", reranker.label,
                     settings.rerank_default)
        app.state.service = service
        app.state.ingest, llm = build_ingest(settings, service, app.state.dedup_policy,
                                             app.state.admission, metrics)
        ingest_worker = asyncio.create_task(app.state.ingest.work_forever(),
                                            name="ingest-events")
        app.state.jobs = JobRunner(service, JobStore(store), app.state.dedup_policy,
                                   admission=app.state.admission, metrics=metrics,
                                   lease_s=settings.jobs_lease_s,
                                   interval_s=settings.jobs_interval_s,
                                   compress=CompressPolicy.from_settings(settings),
                                   summariser=Summariser(llm),
                                   pacer=Pacer(app.state.admission.activity,
                                               duty=settings.jobs_duty,
                                               max_wait_s=settings.jobs_max_wait_ms / 1000))
        app.state.size_trigger = SizeTrigger(app.state.jobs, settings.jobs_user_size)
        app.state.ingest.on_added = app.state.size_trigger.note
        app.state.store_gauges = StoreGauges(metrics, store, settings.metrics_refresh_s)
        job_tasks = [asyncio.create_task(app.state.jobs.work_forever(), name="jobs"),
                     asyncio.create_task(app.state.jobs.schedule_forever(), name="job-schedule"),
                     asyncio.create_task(app.state.size_trigger.watch_forever(),
                                         name="job-size-trigger"),
                     asyncio.create_task(app.state.store_gauges.refresh_forever(),
                                         name="store-gauges")]
        app.state.versions = versions
        app.state.reranker_versions = reranker_versions
        # What is alive after start-up (modules, models, the loaded index) leaves the garbage
        # collector's view, so a full collection (set off by a job's or a batch's allocations)
        # scans only what came since: during make bench-jobs such pauses took 40-86 ms, and
        # 1-4 ms frozen. Unfrozen at shutdown, so a process that makes many apps frees them.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            for task in (ingest_worker, *job_tasks):
                task.cancel()
            await asyncio.gather(ingest_worker, *job_tasks, return_exceptions=True)
            if llm is not None:
                await llm.aclose()
            if connecting is not None:
                connecting.cancel()
                await asyncio.gather(connecting, return_exceptions=True)
            await versions.close()
            for space in (service.target, service.active):
                if space is not None:
                    await space.close()
            await embedder.close()
            if service.local_encoder is not None:
                service.local_encoder.close()
            await store.close()
            in_use.release()
            await authenticator.close()

    app = FastAPI(
        title="Agent memory gateway",
        version="0.1.0",
        summary="Long-term memory for LLM agents: add and search memories by meaning.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.dedup_policy = DedupPolicy.from_settings(settings)
    app.state.metrics = metrics
    # In-process background work takes slots through app.state.admission.slot(...).
    app.state.admission = admission = AdmissionController.from_settings(settings, metrics)
    install_error_handlers(app)
    app.include_router(memories.router)
    app.include_router(events.router)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(admin.router)
    # the Mem0 Platform-compatible API; its errors are {"detail"} answers like ours
    app.include_router(mem0_router, responses=error_responses(*COMMON_ERRORS))
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Outside BodyLimit so a shed request is refused before its body is read; inside
    # RequestMetrics so the 429s are counted like any other answer.
    app.add_middleware(Admission, controller=admission)
    # Outside Admission so shedding counts the key's tenant and a bad key takes no slot.
    app.add_middleware(Authenticate, authenticator=authenticator)
    app.add_middleware(RequestMetrics, metrics=metrics)
    if settings.cors_allow_origins:  # off unless origins are listed
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_allow_origins,
                           allow_methods=CORS_METHODS, allow_headers=CORS_HEADERS,
                           expose_headers=CORS_EXPOSED)
    # Outermost: every answer, the middlewares' own refusals included, gets the request id.
    app.add_middleware(RequestContext)
    return app
