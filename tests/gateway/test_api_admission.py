"""Admission control and deadlines on the real gateway with the real Triton server.

The Triton stats endpoint is the witness: a request dropped for its deadline must not show
up there at all.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpc_infer
from fastapi.testclient import TestClient
from support import settings_for, wait_for
from support.triton_stats import quiet, settled, wait_until_busy

from gateway.admission.limiter import ClassLimiter
from gateway.app import create_app
from gateway.deadline import Deadline, deadline_scope
from gateway.errors import DeadlineExceeded
from gateway.inference.client import EmbedderClient
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.triton import TritonServer
from gateway.versions.control import repository_versions
from loadtest.corpus import sentences


def triton_requests(triton: TritonServer) -> tuple[int, int]:
    """(successful, failed) embedder requests since the server started."""
    with urllib.request.urlopen(f"{triton.http_url}/v2/models/embedder/stats") as response:
        stats = json.load(response)["model_stats"][0]["inference_stats"]
    return int(stats["success"]["count"]), int(stats["fail"]["count"])


def patient(settings: Settings) -> Settings:
    """A long inference timeout: only admission and deadlines may cut requests short here."""
    return settings.model_copy(update={"inference_timeout_s": 60.0})


def batch_body(user: str, count: int) -> dict:
    return {"items": [{"user_id": user, "text": t} for t in sentences(count, seed=7)]}


def test_an_expired_deadline_never_reaches_triton(triton: TritonServer) -> None:
    async def scenario() -> None:
        client = EmbedderClient(triton.grpc_url, "embedder", timeout_s=5, retry_after_s=1,
                                metrics=Metrics())
        try:
            version = repository_versions(triton.model_repository, "embedder")[-1]
            before = quiet(triton, "embedder")
            failed = triton_requests(triton)[1]
            with (deadline_scope(Deadline.after(-0.01)) as deadline,
                  pytest.raises(DeadlineExceeded)):
                await client.embed(["nobody is waiting for this"], version)
            assert deadline is not None and deadline.dropped_at == "before_inference"
            assert quiet(triton, "embedder") == before
            assert triton_requests(triton)[1] == failed
            with deadline_scope(Deadline.after(5)):  # a live deadline goes through
                assert (await client.embed(["someone is waiting"], version)).shape[0] == 1
            assert settled(triton, "embedder", before, 1).requests == 1
        finally:
            await client.close()

    asyncio.run(scenario())


def limiter_of(client: TestClient, route_class: str) -> ClassLimiter:
    return client.app.state.gateway.admission.limiters[route_class]  # type: ignore[attr-defined]


def wait_for_in_flight(client: TestClient, route_class: str, count: int) -> None:
    limiter = limiter_of(client, route_class)
    wait_for(lambda: limiter.in_flight >= count, f"{count} admitted {route_class} request(s)",
             poll_s=0.005)


def test_ingest_burst_is_shed_fast_and_admitted_requests_succeed(
    triton: TritonServer, tmp_path: Path
) -> None:
    settings = settings_for(triton, tmp_path / "data", admission_ingest_limit=2,
                            admission_ingest_queue=2, admission_max_wait_ms=60_000,
                            admission_tenant_share=0)
    bodies = [batch_body(f"u{i}", 100) for i in range(10)]
    start = threading.Barrier(10)
    settings = patient(settings)
    with TestClient(create_app(settings)) as client:
        def add(i: int) -> tuple[int, str | None]:
            start.wait()
            response = client.post("/v1/memories/batch", json=bodies[i])
            return response.status_code, response.headers.get("retry-after")

        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(add, range(10)))
        admitted = [r for r in results if r[0] == 201]
        shed = [r for r in results if r[0] == 429]
        assert len(admitted) == 4 and len(shed) == 6, results
        assert all(r[1] == "1" for r in shed)
        stored = sum(len(client.get("/v1/memories", params={"user_id": f"u{i}",
                                                             "limit": 1000}).json()["results"])
                     for i in range(10))
        assert stored == 4 * 100  # shed requests left nothing behind
        metrics = client.get("/metrics").text
        assert 'memory_admission_shed_total{reason="queue_full",route_class="ingest"} 6.0' \
            in metrics


def test_a_full_ingest_class_sheds_at_once_while_the_wall_stands(
    triton: TritonServer, tmp_path: Path
) -> None:
    """Both ingest slots held (the wall): of eight writes two queue and six are refused while
    the wall still stands, so none of them queued behind it; the two run once it falls."""
    settings = settings_for(triton, tmp_path / "data", admission_ingest_limit=2,
                            admission_ingest_queue=2, admission_max_wait_ms=60_000,
                            admission_tenant_share=0)
    with TestClient(create_app(patient(settings))) as client:
        limiter = limiter_of(client, "ingest")
        assert client.portal is not None
        for _ in range(2):
            client.portal.call(limiter.acquire)
        with ThreadPoolExecutor(8) as pool:
            writes = [pool.submit(client.post, "/v1/memories",
                                  json={"user_id": f"w{i}", "text": f"write {i}"})
                      for i in range(8)]
            shed = wait_for(lambda: [w for w in writes if w.done()] if sum(
                w.done() for w in writes) == 6 else None, "six writes answered")
            assert client.portal.call(lambda: (limiter.in_flight, limiter.queue_depth)) == (2, 2)
            assert [w.result().status_code for w in shed] == [429] * 6
            assert all(w.result().headers["retry-after"] == "1" for w in shed)
            for _ in range(2):
                client.portal.call(limiter.release)
            admitted = [w.result() for w in writes if w not in shed]
        assert [r.status_code for r in admitted] == [201, 201]
        stored = {m["user_id"] for i in range(8) for m in client.get(
            "/v1/memories", params={"user_id": f"w{i}"}).json()["results"]}
        assert len(stored) == 2  # the shed writes left nothing behind
        assert client.portal.call(lambda: (limiter.in_flight, limiter.queue_depth)) == (0, 0)


def test_request_queued_past_its_deadline_is_dropped_before_triton(
    triton: TritonServer, tmp_path: Path
) -> None:
    settings = settings_for(triton, tmp_path / "data", admission_ingest_limit=1,
                            admission_ingest_queue=4, admission_max_wait_ms=60_000)
    settings = patient(settings)
    with TestClient(create_app(settings)) as client:
        before = quiet(triton, "embedder")
        failed = triton_requests(triton)[1]
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(client.post, "/v1/memories/batch", json=batch_body("big", 300))
            wait_for_in_flight(client, "ingest", 1)  # the batch holds the only ingest slot
            started = time.perf_counter()
            late = client.post("/v1/memories", json={"user_id": "late", "text": "too late"},
                               headers={"X-Deadline-Ms": "100"})
            late_s = time.perf_counter() - started
            assert slow.result().status_code == 201
        # The batch held the slot and the wait was 60 s at most: only the 100 ms deadline
        # could end it, in the queue (the metric below), after the wait happened.
        assert late.status_code == 429 and late.headers["retry-after"] == "1"
        assert late_s >= 0.1 - 0.01
        assert settled(triton, "embedder", before, 1).requests == 1  # only the batch
        assert triton_requests(triton)[1] == failed
        assert client.get("/v1/memories", params={"user_id": "late"}).json()["results"] == []
        assert 'memory_deadline_drops_total{stage="queue"} 1.0' in client.get("/metrics").text


def _embed_directly(triton: TritonServer, model: str, count: int) -> None:
    """A big request straight to Triton: keeps ``model``'s only instance busy for a while."""
    texts = np.array([[t.encode()] for t in sentences(count, seed=3)], dtype=np.object_)
    tensor = grpc_infer.InferInput("TEXT", list(texts.shape), "BYTES")
    tensor.set_data_from_numpy(texts)
    with grpc_infer.InferenceServerClient(triton.grpc_url) as direct:
        direct.infer(model, [tensor], client_timeout=120)


def test_search_deadline_caps_the_triton_timeout(triton: TritonServer, tmp_path: Path) -> None:
    """Triton's query model busy with a big request: a search with a 200 ms budget answers 503
    near 200 ms, not after the 60 s inference timeout."""
    settings = settings_for(triton, tmp_path / "data", query_encoder="triton")
    settings = patient(settings)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/memories", json={"user_id": "s", "text": "hiking in the Alps"})
        query_model = client.app.state.gateway.service.models.query_model  # type: ignore[attr-defined]
        assert query_model == "embedder_query"
        with ThreadPoolExecutor(3) as pool:
            slow = [pool.submit(_embed_directly, triton, query_model, 300) for _ in range(3)]
            wait_until_busy(triton, query_model)
            started = time.perf_counter()
            search = client.post("/v1/memories/search", json={"user_id": "s", "query": "alps"},
                                 headers={"X-Deadline-Ms": "200"})
            search_s = time.perf_counter() - started
            for request in slow:
                request.result()
        assert search.status_code == 503 and search.headers["retry-after"]
        # Answered on its own deadline, not on the Triton timeout (far above any busy delay).
        assert search_s < settings.inference_timeout_s / 2


def test_a_search_does_not_queue_behind_a_bulk_ingest(triton: TritonServer,
                                                      tmp_path: Path) -> None:
    """Searches embed with the batcher-free twin, so a 1000-text batch in the embedder's only
    instance does not hold them up."""
    with TestClient(create_app(patient(settings_for(triton, tmp_path / "data")))) as client:
        client.post("/v1/memories", json={"user_id": "s", "text": "hiking in the Alps"})
        with ThreadPoolExecutor(2) as pool:
            slow = [pool.submit(client.post, "/v1/memories/batch", json=batch_body(f"big{i}", 500))
                    for i in range(2)]
            wait_until_busy(triton, "embedder")  # one batch embedding, the other queued
            search = client.post("/v1/memories/search", json={"user_id": "s", "query": "alps"})
            finished_first = not all(request.done() for request in slow)
            assert all(request.result().status_code == 201 for request in slow)
        assert search.status_code == 200
        assert search.json()["results"][0]["text"] == "hiking in the Alps"
        assert finished_first, "the search waited for the bulk batch"
