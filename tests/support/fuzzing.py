"""Schemathesis helpers shared by the fuzz tests: the 5xx rule, the checks, steering generated
bodies past rules a schema cannot state, and one operation's run of examples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

statuses: Counter[int] = Counter()  # every status answered, over the whole session
problems: list[str] = []  # unexpected 5xx, as "METHOD path -> status"


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


def fuzz_operation(operation: schemathesis.APIOperation, url: str, auth: dict[str, str],
                   session: requests.Session, *, examples: int, randomise: bool = False,
                   checks: Sequence[Callable[..., Any]] = CHECKS) -> None:
    """``examples`` cases of valid, steered-valid and invalid input for one operation, every
    check each."""
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    strategy = st.one_of(positive, positive.map(_plausible),
                         operation.as_strategy(GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=examples, deadline=None, derandomize=not randomise, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: schemathesis.Case) -> None:
        headers = {**(case.headers or {}), **auth}
        response = case.call(base_url=url, session=session, headers=headers, timeout=30)
        case.validate_response(response, checks=list(checks))

    run()
