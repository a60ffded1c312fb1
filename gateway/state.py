"""What a started gateway holds: one typed object, built by ``gateway.startup``.

Routes reach it through ``gateway.api.deps`` (``app.state.gateway``), so every part the
application serves with is named here with its type, and nothing else hangs off ``app.state``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.admission.controller import AdmissionController
from gateway.jobs.runner import JobRunner
from gateway.jobs.triggers import SizeTrigger
from gateway.memory.dedup import DedupPolicy
from gateway.memory.events import Ingest
from gateway.memory.feed import FeedFollower
from gateway.memory.image_memories import ImageMemories
from gateway.memory.service import MemoryService
from gateway.metrics import Metrics, StoreGauges
from gateway.settings import Settings
from gateway.store.base import Store
from gateway.versions.activation import EmbedderVersions
from gateway.versions.clip import ClipVersions
from gateway.versions.rerankers import RerankerVersions


@dataclass(frozen=True, slots=True)
class GatewayState:
    """The running gateway's parts; each is opened, and closed, by the start-up steps."""

    settings: Settings
    metrics: Metrics
    admission: AdmissionController  # in-process background work takes slots here too
    dedup_policy: DedupPolicy
    store: Store
    service: MemoryService
    versions: EmbedderVersions
    reranker_versions: RerankerVersions
    ingest: Ingest
    jobs: JobRunner
    size_trigger: SizeTrigger
    store_gauges: StoreGauges
    images: ImageMemories  # image memories and the search over both modalities
    clip_versions: ClipVersions  # the CLIP version and its migrations
    feed: FeedFollower | None = None  # the change feed's follower, on a replica
