"""Search queries embedded inside the gateway, from the very files Triton serves.

A one-text query through Triton's python backend pays a gRPC round trip and the backend's
process hop on top of the model run; on a small CPU that is as much as the run itself
(docs/architecture.md, "The query path"). So when the gateway can read the model repository
and has ONNX Runtime and tokenizers, it loads the active version's own
``embedding_runtime.py`` (the file Triton's ``model.py`` runs and the exporter validated) and
embeds search queries here, on one thread of its own. Writes still go to Triton.

Trust is checked, not assumed: a version is used only after its local vectors for a few probe
texts agree with what Triton answers for the same version (a gateway pointed at another
repository than its Triton's would otherwise search one model's vectors with another's
queries). Anything missing or disagreeing leaves queries on Triton.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from gateway.deadline import current_deadline
from gateway.errors import DeadlineExceeded, GatewayError
from gateway.inference.coalescer import EmbedCoalescer
from gateway.inference.int8_query import already_int8, int8_version
from gateway.metrics import Metrics
from gateway.threads import lower_thread_priority

log = logging.getLogger("gateway.inference")

RUNTIME_FILE = "embedding_runtime.py"
# A search's query embedding yields the cores to writes (whose embeddings Triton runs at the
# gateway's priority), as the vector and keyword searches' own threads do.
QUERY_ENCODER_NICE = 5
# Texts both sides embed before a version is trusted here: short, long, non-ASCII.
PROBE_TEXTS = (
    "dimension probe",
    "The user prefers window seats on long flights and vegetarian meals when travelling.",
    "Grüße aus Köln: 東京 meeting moved to Tuesday",
)
MIN_AGREEMENT = 0.9999  # cosine between local and Triton vectors of each probe text
# The int8 query graph against Triton's fp32 vectors: the exporter's bound for an int8 version
# (export embedder --int8-min-cosine); MiniLM's probes measure 0.99 or more.
INT8_MIN_AGREEMENT = 0.97
LOCAL_MODEL = "local"  # the coalescer's model key for calls made here

Reference = Callable[[list[str]], Awaitable[np.ndarray]]  # Triton's vectors for a version


class LocalEncoderUnavailable(Exception):
    """The version is not loaded here, or its run failed: embed with Triton instead."""


def load_runtime(version_dir: Path, threads: int, *, spinning: bool = True) -> Any:
    """The version's ``EmbeddingRuntime``, imported by path (never another copy on sys.path).

    ``spinning=False`` is passed on only to runtimes that know it (versions exported before
    it existed keep ONNX Runtime's default).
    """
    path = version_dir / RUNTIME_FILE
    spec = importlib.util.spec_from_file_location(f"embedding_runtime_v{version_dir.name}", path)
    if spec is None or spec.loader is None:
        raise OSError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    runtime_class = module.EmbeddingRuntime
    options: dict[str, Any] = {"intra_op_threads": threads}
    if not spinning and "spinning" in inspect.signature(runtime_class).parameters:
        options["spinning"] = False
    return runtime_class(version_dir, **options)


def agreement(local: np.ndarray, served: np.ndarray) -> float:
    """The lowest row cosine between two sets of unit vectors (-1.0 when shapes differ)."""
    if local.shape != served.shape:
        return -1.0
    return float(np.min(np.sum(local * served, axis=1)))


class LocalQueryEncoder:
    """Versions loaded and checked here, and the one thread that runs them.

    Concurrent queries are coalesced (no window: a lone query goes at once), so eight
    clients share runs instead of queueing eight.
    """

    def __init__(self, repository: Path, model: str, *, threads: int,
                 metrics: Metrics | None = None, precision: str = "fp32",
                 int8_fallback: Path | None = None) -> None:
        self.repository, self.model, self.threads = repository, model, threads
        self.precision = precision  # "int8": queries run on a per-channel int8 copy
        self.int8_fallback = int8_fallback  # where that copy goes if the repository is read-only
        self.precisions: dict[str, str] = {}  # version -> what its queries run on
        self._metrics = metrics
        self._runtimes: dict[str, Any] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-encoder",
                                            initializer=lower_thread_priority,
                                            initargs=(QUERY_ENCODER_NICE,))
        self._coalescer = EmbedCoalescer(self._run)

    def serves(self, version: str) -> bool:
        return version in self._runtimes

    async def prepare(self, version: str, reference: Reference) -> bool:
        """Load ``version`` and check it against Triton's vectors; True when it serves here.

        Never raises: a version that cannot be loaded or disagrees stays on Triton (logged).
        """
        if version in self._runtimes:
            return True
        version_dir = self.repository / self.model / version
        try:
            # Not on the query thread: a swap's load must not hold up the active version's
            # queries. No spinning: the CPU is shared.
            runtime = await asyncio.to_thread(load_runtime, version_dir, self.threads,
                                              spinning=False)
            local = await asyncio.to_thread(runtime.embed, list(PROBE_TEXTS))
            served = await reference(list(PROBE_TEXTS))
        except GatewayError as exc:
            log.warning("query encoder: Triton gave no reference for %s:%s (%s); queries stay "
                        "on Triton", self.model, version, exc.detail)
            return False
        except Exception as exc:  # missing files, packages, a broken graph
            log.info("query encoder: %s:%s not loadable in the gateway (%s: %s); queries stay "
                     "on Triton", self.model, version, type(exc).__name__, exc)
            return False
        score = agreement(np.asarray(local, np.float32), np.asarray(served, np.float32))
        if score < MIN_AGREEMENT:
            log.warning("query encoder: %s in the gateway's repository disagrees with what "
                        "Triton serves (cosine %.4f); queries stay on Triton", version_dir, score)
            return False
        precision = "fp32"
        if self.precision == "int8":
            runtime, precision = await self._int8(version_dir, runtime, served)
        self._runtimes[version] = runtime
        self.precisions[version] = precision
        log.info("query encoder: %s:%s embeds search queries in the gateway (%s, %d thread(s))",
                 self.model, version, precision, self.threads)
        return True

    async def _int8(self, version_dir: Path, runtime: Any,
                    served: np.ndarray) -> tuple[Any, str]:
        """The int8 copy's runtime when it can be made and agrees with Triton, else
        ``runtime`` (fp32). A version exported as int8 already is used as it is."""
        if already_int8(version_dir):
            return runtime, "int8"
        fallback = self.int8_fallback or Path(tempfile.gettempdir()) / "agent-memory-query-int8"
        try:
            folder = await asyncio.to_thread(int8_version, version_dir, fallback)
            quantised = await asyncio.to_thread(load_runtime, folder, self.threads,
                                                spinning=False)
            local = await asyncio.to_thread(quantised.embed, list(PROBE_TEXTS))
        except Exception as exc:  # no quantisation tooling, a read-only disk, a broken graph
            log.warning("query encoder: no int8 query graph for %s (%s: %s); queries run fp32",
                        version_dir, type(exc).__name__, exc)
            return runtime, "fp32"
        score = agreement(np.asarray(local, np.float32), np.asarray(served, np.float32))
        if score < INT8_MIN_AGREEMENT:
            log.warning("query encoder: the int8 query graph of %s agrees with Triton only to "
                        "cosine %.4f; queries run fp32", version_dir, score)
            return runtime, "fp32"
        return quantised, "int8"

    def retain(self, versions: Iterable[str]) -> None:
        """Drop every loaded version but ``versions`` (after a switch: the old one)."""
        keep = set(versions)
        for version in [v for v in self._runtimes if v not in keep]:
            del self._runtimes[version]
            self.precisions.pop(version, None)

    async def embed(self, texts: list[str], version: str) -> np.ndarray:
        """``[len(texts), dim]`` unit vectors; raises ``LocalEncoderUnavailable`` (use Triton)
        or ``DeadlineExceeded``."""
        if version not in self._runtimes:
            raise LocalEncoderUnavailable(version)
        return await self._coalescer.embed(texts, version, LOCAL_MODEL)

    async def _run(self, texts: list[str], version: str, _model: str) -> np.ndarray:
        deadline = current_deadline()
        if deadline is not None and deadline.expired:
            deadline.dropped_at = "before_inference"
            raise DeadlineExceeded("request deadline exceeded before inference")
        runtime = self._runtimes.get(version)
        if runtime is None:  # dropped by a switch while this call waited
            raise LocalEncoderUnavailable(version)
        started = time.perf_counter()
        try:
            vectors = await asyncio.get_running_loop().run_in_executor(
                self._executor, runtime.embed, texts)
        except Exception as exc:  # any runtime failure falls back to Triton
            log.warning("query encoder: %s:%s failed (%s: %s); this query goes to Triton",
                        self.model, version, type(exc).__name__, exc)
            raise LocalEncoderUnavailable(version) from exc
        if self._metrics is not None:
            self._metrics.query_encoder_latency.observe(time.perf_counter() - started)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def close(self) -> None:
        self._runtimes.clear()
        self.precisions.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)
