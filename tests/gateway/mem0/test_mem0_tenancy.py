"""Token auth through the Mem0 client, with keys made by the gateway's own key store, and
tenant isolation on every Mem0 route: another tenant's memory or user is a 404 or an empty
result, never data."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mem0.client.main import MemoryClient
from mem0.exceptions import AuthenticationError, MemoryNotFoundError
from support import settings_for
from support.servers import serving

from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.triton import TritonServer

SECRET = "I keep the spare key under the blue flowerpot"


@pytest.fixture(scope="module")
def secured(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[tuple[str, dict[str, str]]]:
    """A gateway with MEMORY_AUTH=required and keys: two tenants, plus a read-only key."""
    settings = settings_for(triton, tmp_path_factory.mktemp("mem0-auth"), auth="required")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with KeyStore(settings.keys_path) as store:
        keys = {
            "acme": store.create("acme", KeyScope.WRITE)[0].secret_key,
            "acme-read": store.create("acme", KeyScope.READ)[0].secret_key,
            "globex": store.create("globex", KeyScope.WRITE)[0].secret_key,
        }
        revoked = store.create("acme", KeyScope.WRITE)[0]
        store.revoke(revoked.key_id)
        keys["revoked"] = revoked.secret_key
    keys["path"] = str(settings.keys_path)
    with serving(settings) as url:
        yield url, keys


def test_token_auth_and_scopes(secured: tuple[str, dict[str, str]]) -> None:
    url, keys = secured
    acme = MemoryClient(api_key=keys["acme"], host=url)
    assert (acme.org_id, acme.project_id) == ("acme", "default")
    user = f"u-{uuid.uuid4().hex[:8]}"
    acme.add(SECRET, user_id=user)

    reader = MemoryClient(api_key=keys["acme-read"], host=url)
    assert reader.search("where is the key", filters={"user_id": user})["results"]
    with pytest.raises(AuthenticationError) as forbidden:
        reader.add("more", user_id=user)
    assert forbidden.value.error_code == "HTTP_403"

    for bad in (keys["revoked"], "amk_000000000000_" + "x" * 43, "not-a-key"):
        with pytest.raises(ValueError, match="Error: .*(invalid|revoked)"):
            MemoryClient(api_key=bad, host=url)
    with httpx.Client(base_url=url) as http:
        assert http.get("/v1/ping/").status_code == 401  # no key at all


def test_tenants_never_see_each_other(secured: tuple[str, dict[str, str]]) -> None:
    url, keys = secured
    acme = MemoryClient(api_key=keys["acme"], host=url)
    globex = MemoryClient(api_key=keys["globex"], host=url)
    user, agent = "alice", f"agent-{uuid.uuid4().hex[:8]}"  # the same names in both tenants
    [mine] = acme.add(SECRET, user_id=user, agent_id=agent)["results"]
    globex.add("Globex's alice likes tea", user_id=user)

    assert [r["memory"] for r in globex.search("spare key", filters={"user_id": user})
            ["results"]] == ["Globex's alice likes tea"]
    for flt in ({"user_id": "*"}, {"agent_id": agent}, {"user_id": {"in": [user]}}):
        assert SECRET not in [m["memory"] for m in globex.get_all(filters=flt)["results"]]
    assert ("agent", agent) not in {(e["type"], e["name"]) for e in globex.users()["results"]}

    for call in (lambda: globex.get(mine["id"]), lambda: globex.history(mine["id"]),
                 lambda: globex.update(mine["id"], text="pwned"),
                 lambda: globex.delete(mine["id"]),
                 lambda: globex.batch_update([{"memory_id": mine["id"], "text": "pwned"}]),
                 lambda: globex.batch_delete([{"memory_id": mine["id"]}])):
        with pytest.raises(MemoryNotFoundError):
            call()

    globex.delete_all(agent_id=agent)
    globex.delete_users(agent_id=agent)
    globex.delete_all(user_id="*")
    assert acme.get(mine["id"])["memory"] == SECRET  # untouched by all of the above
    assert globex.get_all(filters={"user_id": "*"})["count"] == 0


def test_key_created_while_running_works_at_once(secured: tuple[str, dict[str, str]]) -> None:
    """The gateway reads the key store per request: a key made after start-up just works."""
    url, keys = secured
    with KeyStore(Path(keys["path"])) as store:
        late = store.create("initech", KeyScope.WRITE)[0].secret_key
    assert MemoryClient(api_key=late, host=url).org_id == "initech"
