"""Ingest requests that run now or later: plain adds, and LLM extraction with its fallbacks.

``infer`` failure policy (``MEMORY_LLM_ON_FAILURE``): ``raw`` stores the messages that were not
extracted as raw memories at once (deduplicated like any add); ``queue`` keeps them in the
store's event table and retries later with exponential backoff, storing them raw once the
attempts run out. Either way the raw input is never lost, and the answer says which happened.
``async_mode`` requests always go through the event table (202 + event id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from gateway.admission.controller import AdmissionController
from gateway.admission.limiter import Priority
from gateway.domain.model import Memory
from gateway.errors import GatewayError, Overloaded
from gateway.memory.changes import NewMemory
from gateway.memory.clock import utc_later
from gateway.memory.dedup import DedupPolicy
from gateway.memory.extraction.client import ChatClient, LLMConfig, LLMFailure
from gateway.memory.extraction.pipeline import Extraction
from gateway.memory.extraction.prompts import load as load_prompts
from gateway.memory.ids import uuid7
from gateway.memory.service import MemoryService, utc_now
from gateway.memory.writeplan import Draft
from gateway.store.base import EventQueue
from gateway.store.types import IngestEvent

if TYPE_CHECKING:
    from gateway.metrics import Metrics
    from gateway.settings import Settings

log = logging.getLogger("gateway.ingest")
IDLE_CHECK_S = 60.0  # the worker looks at the queue at least this often
MAX_BACKOFF_S = 3600.0


@dataclass(frozen=True, slots=True)
class IngestRequest:
    items: list[list[Draft]]  # the drafts of each request item (one conversation each)
    infer: bool = False

    def encode(self) -> dict[str, Any]:
        return {"infer": self.infer, "items": [[{
            "memory": asdict(d.memory), "dedup": d.dedup, "priority_given": d.priority_given,
        } for d in drafts] for drafts in self.items]}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> IngestRequest:
        return cls([[Draft(NewMemory(**d["memory"]), d["dedup"], d["priority_given"])
                     for d in drafts] for drafts in data["items"]], bool(data["infer"]))

    def rest(self, first: int) -> IngestRequest:
        return IngestRequest(self.items[first:], self.infer)


@dataclass(frozen=True, slots=True)
class ItemResult:
    item: int
    event: str  # ADD | UPDATE | DELETE | NOOP
    memory: Memory
    match: str | None = None

    def encode(self) -> dict[str, Any]:
        return {"item": self.item, "event": self.event, "match": self.match,
                "memory": asdict(self.memory)}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> ItemResult:
        return cls(data["item"], data["event"], Memory(**data["memory"]), data["match"])


@dataclass(frozen=True, slots=True)
class Inference:
    status: Literal["SUCCEEDED", "FAILED"]
    fallback: Literal["raw", "queued"] | None = None
    detail: str | None = None
    event_id: str | None = None


@dataclass(slots=True)
class Report:
    results: list[ItemResult] = field(default_factory=list)
    inference: Inference | None = None

    def encode(self, done: int) -> dict[str, Any]:
        return {"done": done, "results": [r.encode() for r in self.results],
                "inference": asdict(self.inference) if self.inference else None}

    @classmethod
    def decode(cls, data: dict[str, Any] | None) -> tuple[Report, int]:
        if not data:
            return cls(), 0
        inference = Inference(**data["inference"]) if data.get("inference") else None
        return cls([ItemResult.decode(r) for r in data["results"]], inference), data["done"]


class Ingest:
    def __init__(self, service: MemoryService, events: EventQueue, policy: DedupPolicy,
                 extraction: Extraction | None, *, on_failure: Literal["raw", "queue"] = "raw",
                 attempts: int = 5, backoff_s: float = 30.0,
                 admission: AdmissionController | None = None,
                 metrics: Metrics | None = None) -> None:
        self.service = service
        self.events = events
        self.policy = policy
        self.extraction = extraction
        self.on_failure = on_failure
        self.attempts = attempts  # tries of a queued event before its input is stored raw
        self.backoff_s = backoff_s
        self.admission = admission  # queued work takes ingest slots at background priority
        self.metrics = metrics
        # Told the users of every committed ADD (the size trigger); must not block or raise.
        self.on_added: Callable[[set[str]], None] | None = None
        self._wake = asyncio.Event()

    # -- now ----------------------------------------------------------------------------------
    async def run(self, request: IngestRequest, *, single: bool = False) -> Report:
        """Apply a request now; with ``infer``, an LLM failure takes the fallback path.
        ``single``: one add's drafts, not a batch's items (it says where errors point)."""
        report = Report()
        if not request.infer:
            await self._raw(request, 0, report, single)
            return report
        for position in range(len(request.items)):
            try:
                await self._infer(request, position, report)
            except LLMFailure as exc:
                if self.on_failure == "queue":
                    event_id = await self.submit(request.rest(position), attempts=1,
                                                 error=str(exc), delay_s=self.backoff_s)
                    report.inference = Inference("FAILED", "queued", str(exc), event_id)
                else:
                    await self._raw(request, position, report, single)
                    report.inference = Inference("FAILED", "raw", str(exc))
                return report
        report.inference = Inference("SUCCEEDED")
        return report

    async def _infer(self, request: IngestRequest, position: int, report: Report) -> None:
        assert self.extraction is not None
        try:
            inferred = await self.extraction.run(request.items[position])
        except LLMFailure as exc:
            if self.metrics is not None:
                self.metrics.llm_failures.labels(exc.reason).inc()
            raise
        for result in inferred:
            report.results.append(ItemResult(position, result.event, result.memory))
            self._count(result.event, "llm")
        self._added({r.memory.user_id for r in inferred if r.event == "ADD"})

    def _count(self, event: str, source: str) -> None:
        if self.metrics is not None:
            self.metrics.ingest_results.labels(event, source).inc()

    async def _raw(self, request: IngestRequest, first: int, report: Report,
                   single: bool = False) -> None:
        drafts = [d for drafts in request.items[first:] for d in drafts]
        items = [first + i for i, drafts in enumerate(request.items[first:]) for _ in drafts]
        outcomes = await self.service.ingest(drafts, self.policy, single=single)
        for item, o in zip(items, outcomes, strict=True):
            report.results.append(
                ItemResult(item, o.event, o.memory, o.duplicate.kind if o.duplicate else None))
            self._count(o.event, "raw")
        self._added({o.memory.user_id for o in outcomes if o.event == "ADD"})

    def _added(self, users: set[str]) -> None:
        if users and self.on_added is not None:
            self.on_added(users)

    # -- later --------------------------------------------------------------------------------
    async def submit(self, request: IngestRequest, *, attempts: int = 0,
                     error: str | None = None, delay_s: float = 0.0) -> str:
        """Keep the request in the store (committed before this returns) and wake the worker."""
        event_id = uuid7()
        user = request.items[0][0].memory.user_id
        await self.events.create_event(event_id, user, request.encode(), utc_now(),
                                       attempts=attempts, error=error,
                                       next_attempt=utc_later(delay_s) if delay_s else None)
        self._wake.set()
        return event_id

    async def work_forever(self) -> None:
        """The worker: run due events one at a time, sleep until the next one is due."""
        await self.events.recover_events(utc_now())
        while True:
            self._wake.clear()
            event = await self.events.claim_event(utc_now())
            if event is not None:
                try:
                    async with self._slot():
                        await self._process(event)
                except GatewayError as exc:  # shed, or even the raw fallback failed
                    delay = exc.retry_after if isinstance(exc, Overloaded) else self.backoff_s
                    await self.events.save_event(event.id, "PENDING", utc_now(),
                                                 error=str(exc),
                                                 next_attempt=utc_later(delay or self.backoff_s))
                continue
            due = await self.events.next_event_due()
            wait = IDLE_CHECK_S
            if due is not None:
                seconds = (datetime.fromisoformat(due.replace("Z", "+00:00"))
                           - datetime.now(UTC)).total_seconds()
                wait = min(max(seconds, 0.0), IDLE_CHECK_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """An ingest admission slot at background priority: interactive writes go first."""
        if self.admission is None:
            return contextlib.nullcontext()
        return self.admission.slot("ingest", Priority.BACKGROUND)

    async def _process(self, event: IngestEvent) -> None:
        request = IngestRequest.decode(event.request)
        report, done = Report.decode(event.result)
        try:
            if not request.infer:
                await self._raw(request, 0, report)
                done = len(request.items)
            while done < len(request.items):
                await self._infer(request, done, report)
                done += 1
                await self.events.save_event(event.id, "RUNNING", utc_now(),
                                             result=report.encode(done))
        except (LLMFailure, GatewayError) as exc:
            attempts = event.attempts + 1
            if attempts < self.attempts:
                delay = min(self.backoff_s * 2 ** (attempts - 1), MAX_BACKOFF_S)
                log.warning("ingest event %s failed (%s); retry %d in %.0f s", event.id, exc,
                            attempts, delay)
                await self.events.save_event(event.id, "PENDING", utc_now(),
                                             result=report.encode(done), error=str(exc),
                                             attempts=attempts, next_attempt=utc_later(delay))
                return
            if isinstance(exc, LLMFailure):  # out of attempts: keep the rest raw
                await self._raw(request, done, report)
                report.inference = Inference("FAILED", "raw", str(exc))
                await self.events.save_event(event.id, "FAILED", utc_now(),
                                             result=report.encode(len(request.items)),
                                             error=str(exc), attempts=attempts)
                return
            await self.events.save_event(event.id, "FAILED", utc_now(),
                                         result=report.encode(done), error=str(exc),
                                         attempts=attempts)
            return
        if request.infer:
            report.inference = report.inference or Inference("SUCCEEDED")
        await self.events.save_event(event.id, "SUCCEEDED", utc_now(),
                                     result=report.encode(done), attempts=event.attempts + 1)


def build_ingest(settings: Settings, service: MemoryService, policy: DedupPolicy,
                 admission: AdmissionController | None = None, metrics: Metrics | None = None,
                 ) -> tuple[Ingest, ChatClient | None]:
    """The ingest runner, with LLM extraction when ``MEMORY_LLM_BASE_URL`` and
    ``MEMORY_LLM_MODEL`` are set; the chat client is returned for closing."""
    client = None
    extraction = None
    if settings.llm_base_url and settings.llm_model:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        client = ChatClient(LLMConfig(settings.llm_base_url, settings.llm_model, key,
                                      settings.llm_timeout_s, settings.llm_attempts,
                                      settings.llm_backoff_s))
        extraction = Extraction(service, client, load_prompts(), policy)
    ingest = Ingest(service, service.store, policy, extraction,
                    on_failure=settings.llm_on_failure, attempts=settings.ingest_queue_attempts,
                    backoff_s=settings.ingest_queue_backoff_s, admission=admission,
                    metrics=metrics)
    return ingest, client
