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
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from support import settings_for
from support.servers import serving

from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.triton import TritonServer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"  # make fuzz: a new seed each run
REPORT = os.environ.get("FUZZ_REPORT")  # make fuzz: where the summary JSON goes

statuses: Counter[int] = Counter()
problems: list[str] = []


@schemathesis.check
def no_server_error_but_503_with_retry_after(ctx, response, case):
    """5xx only as 503 + Retry-After (overload, inference away), or a documented 501."""
    status = response.status_code
    statuses[status] += 1
    if status < 500:
        return
    if status == 503 and response.headers.get("retry-after"):
        return
    documented = case.operation.definition.raw.get("responses", {})
    if status == 501 and "501" in documented:
        return
    problems.append(f"{case.method} {case.formatted_path} -> {status}")
    raise AssertionError(f"{status} from {case.method} {case.formatted_path}: "
                         f"{response.text[:300]}")


CHECKS = [
    no_server_error_but_503_with_retry_after,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def gateway(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[str, dict[str, str]]]:
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


_CROSS_FIELD = ("embedding", "occurred_at", "expires_at", "infer", "messages")


def _settle(fields: dict, needs: str | None = None) -> None:
    """Make a generated body meet the rules a schema cannot state (one of text/messages, a
    vector of the model's dimension, plausible years, ids without control characters)."""
    for name in _CROSS_FIELD:
        fields.pop(name, None)
    if "user_id" in fields:
        fields["user_id"] = "fuzz-user"
    for name in ("agent_id", "run_id"):
        if fields.get(name) is not None:
            fields[name] = f"fuzz-{name}"
    if "priority" in fields:
        fields["priority"] = 5  # the schema's integer also admits 5.0; the API is strict
    if "text" in fields or needs == "text":
        fields["text"] = f"fuzz note {fields.get('text') or ''}"
    if "query" in fields or needs == "query":
        fields["query"] = f"fuzz {fields.get('query') or ''}"


_NEEDS = {"/v1/memories": "text", "/v1/memories/search": "query"}  # POST bodies


def _plausible(case: schemathesis.Case) -> schemathesis.Case:
    """A valid-by-schema case steered past the cross-field rules, so writes and searches
    reach the store and the index instead of stopping at validation."""
    if isinstance(case.body, dict):
        _settle(case.body, _NEEDS.get(case.operation.path) if case.method == "POST" else None)
        for item in case.body.get("items") or []:
            if isinstance(item, dict):
                _settle(item, "text")
    if case.query and "user_id" in case.query:
        case.query["user_id"] = "fuzz-user"
    return case


def _fuzz_operation(operation: schemathesis.APIOperation, url: str, auth: dict[str, str],
                    session: requests.Session) -> None:
    """``EXAMPLES`` cases of valid, steered-valid and invalid input for one operation, every
    check each."""
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    strategy = st.one_of(positive, positive.map(_plausible),
                         operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: schemathesis.Case) -> None:
        headers = {**(case.headers or {}), **auth}
        response = case.call(base_url=url, session=session, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    run()


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
                _fuzz_operation(operation, url, auth, session)
            except (Exception, BaseExceptionGroup) as exc:  # collect them all
                failures[operation.label] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    print(f"fuzz: {operations} operations, {sum(statuses.values())} requests, "
          f"statuses {dict(sorted(statuses.items()))}")
    assert operations >= 50, f"only {operations} operations in the schema"
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
