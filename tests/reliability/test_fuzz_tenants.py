"""Schemathesis with keys required and two tenants: every operation of the gateway's own
OpenAPI schema, fuzzed as ``acme`` (write key) and as ``globex`` (read key), with the checks of
``test_fuzz`` and one property more: no answer to one tenant carries the other tenant's data.

Each tenant holds a canary memory (a text no generator can guess) under the user id the fuzzer
steers to, so every list, search, history and entity route that leaks across tenants would
return it. ``TENANT_FUZZ_EXAMPLES`` cases per operation and principal (20 here);
``make fuzz-tenants`` runs it with more and writes the counts to ``loadtest/results/``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import requests
import schemathesis
from support import settings_for
from support.fuzzing import CHECKS, fuzz_operation
from support.servers import serving

from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.triton import TritonServer

EXAMPLES = int(os.environ.get("TENANT_FUZZ_EXAMPLES", "20"))
REPORT = os.environ.get("TENANT_FUZZ_REPORT")
USER = "fuzz-user"  # the user id support.fuzzing steers every generated case to


@dataclass
class Tenant:
    name: str
    key: str  # the key the fuzzer uses for this tenant
    canary: str  # a text only this tenant stored
    ids: set[str] = field(default_factory=set)  # its memories' ids


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    leaks: list[str] = field(default_factory=list)


def _seed(url: str, key: str, canary: str) -> set[str]:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        made = [http.post("/v1/memories", json={"user_id": USER, "text": text,
                                                "metadata": {"canary": canary}})
                for text in (f"{canary} alpha", f"{canary} beta")]
        for answer in made:
            assert answer.status_code == 201, answer.text
    return {answer.json()["id"] for answer in made}


@pytest.fixture(scope="module")
def tenants(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[str, Tenant, Tenant]]:
    settings = settings_for(triton, tmp_path_factory.mktemp("fuzz-tenants"), auth="required")
    with KeyStore(settings.keys_path) as keys:
        acme_write = keys.create("acme", KeyScope.WRITE)[0].secret_key
        globex_write = keys.create("globex", KeyScope.WRITE)[0].secret_key
        globex_read = keys.create("globex", KeyScope.READ)[0].secret_key
    acme = Tenant("acme", acme_write, f"acme-canary-{uuid.uuid4().hex}")
    globex = Tenant("globex", globex_read, f"globex-canary-{uuid.uuid4().hex}")
    with serving(settings) as url:
        acme.ids = _seed(url, acme_write, acme.canary)
        globex.ids = _seed(url, globex_write, globex.canary)
        yield url, acme, globex


def _no_trace_of(other: Tenant, tally: Tally):  # returns a schemathesis check
    """A check: the answer holds neither the other tenant's canary nor one of its ids."""

    def no_cross_tenant_read(ctx, response, case) -> None:
        tally.requests[other.name] += 1
        body = response.text
        found = [mark for mark in (other.canary, *other.ids) if mark in body]
        if found:
            tally.leaks.append(f"{case.method} {case.formatted_path} -> {found}")
            raise AssertionError(f"{case.method} {case.formatted_path} answered with "
                                 f"{other.name}'s data: {found}")

    return no_cross_tenant_read


def _holds_canary(url: str, tenant: Tenant) -> bool:
    """Whether the tenant's own key still finds its canary (so a leak would have shown)."""
    answer = httpx.post(f"{url}/v1/memories/search", timeout=30,
                        headers={"Authorization": f"Bearer {tenant.key}"},
                        json={"user_id": USER, "query": tenant.canary, "mode": "keyword"})
    assert answer.status_code == 200, answer.text
    return any(tenant.canary in r["text"] for r in answer.json()["results"])


def test_no_tenant_reads_another_and_every_contract_holds(
        tenants: tuple[str, Tenant, Tenant]) -> None:
    url, acme, globex = tenants
    tally = Tally()
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    with requests.Session() as session:
        # globex (a read key) first: acme's write key may delete acme's own canary later.
        for me, other in ((globex, acme), (acme, globex)):
            assert _holds_canary(url, other), f"{other.name}'s canary is gone: nothing to leak"
            checks = [*CHECKS, _no_trace_of(other, tally)]
            auth = {"Authorization": f"Bearer {me.key}"}
            for operation in operations:
                try:
                    fuzz_operation(operation, url, auth, session, examples=EXAMPLES,
                                   checks=checks)
                except (Exception, BaseExceptionGroup) as exc:  # collect them all
                    failures[f"{me.name}: {operation.label}"] = (
                        f"{type(exc).__name__}: {str(exc)[:2000]}")
    total = sum(tally.requests.values())
    print(f"fuzz-tenants: {len(operations)} operations x 2 principals, {total} requests, "
          f"{len(tally.leaks)} cross-tenant reads")
    if REPORT:
        Path(REPORT).parent.mkdir(parents=True, exist_ok=True)
        Path(REPORT).write_text(json.dumps({
            "examples_per_operation": EXAMPLES, "operations": len(operations),
            "requests": total, "cross_tenant_reads": tally.leaks,
            "failures": sorted(failures),
        }, indent=2) + "\n")
    assert len(operations) >= 50
    assert not tally.leaks, tally.leaks
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())


def test_the_property_catches_a_leak() -> None:
    """The check above could fail: an answer carrying the other tenant's id is reported."""
    other = Tenant("globex", "key", "globex-canary-x", {"019-globex-id"})
    tally = Tally()
    check = _no_trace_of(other, tally)

    @dataclass
    class Answer:
        text: str

    @dataclass
    class Case:
        method: str = "GET"
        formatted_path: str = "/v1/memories"

    check(None, Answer('{"results": []}'), Case())
    with pytest.raises(AssertionError, match="globex's data"):
        check(None, Answer('{"results": [{"id": "019-globex-id"}]}'), Case())
    assert tally.requests["globex"] == 2 and len(tally.leaks) == 1
