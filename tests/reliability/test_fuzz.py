"""Schemathesis against the running gateway's own OpenAPI schema: every route, the Mem0
compatibility routes included, over real HTTP with a write-scope key.

Checks: no 5xx but 503 with Retry-After (and 501 where the operation documents it: the Mem0
platform features this service does not offer); every status documented; every body, header and
content type as the schema says. Bounded here (``FUZZ_EXAMPLES`` per operation, 30 by default,
derandomised); ``make fuzz`` runs it long and random and writes the request count to
``loadtest/results/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from support import settings_for
from support.fuzzing import fuzz_operation, problems, statuses
from support.servers import serving

from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.triton import TritonServer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"  # make fuzz: a new seed each run
REPORT = os.environ.get("FUZZ_REPORT")  # make fuzz: where the summary JSON goes


@pytest.fixture(scope="module")
def gateway(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[str, dict[str, str]]]:
    statuses.clear()  # the session's other fuzz runs count their own
    problems.clear()
    settings = settings_for(triton, tmp_path_factory.mktemp("fuzz-data"), auth="required")
    with KeyStore(settings.keys_path) as keys:
        key = keys.create("fuzz", KeyScope.WRITE)[0].secret_key
    with serving(settings) as url:
        yield url, {"Authorization": f"Bearer {key}"}
    if REPORT:
        Path(REPORT).parent.mkdir(parents=True, exist_ok=True)
        Path(REPORT).write_text(json.dumps({
            "examples_per_operation": EXAMPLES, "requests": sum(statuses.values()),
            "statuses": dict(sorted(statuses.items())), "unexpected_5xx": problems,
        }, indent=2) + "\n")


def test_every_operation_keeps_its_contract(gateway: tuple[str, dict[str, str]]) -> None:
    url, auth = gateway
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            try:
                fuzz_operation(operation, url, auth, session, examples=EXAMPLES, randomise=RANDOM)
            except (Exception, BaseExceptionGroup) as exc:  # collect them all
                failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    print(f"fuzz: {operations} operations, {sum(statuses.values())} requests, "
          f"statuses {dict(sorted(statuses.items()))}")
    assert operations >= 50, f"only {operations} operations in the schema"
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
