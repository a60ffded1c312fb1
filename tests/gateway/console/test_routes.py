"""The console's rules over HTTP (TestClient, real Triton and SQLite): sign-in sessions, CSRF,
key scopes and tenants as on the API, escaping, headers, and each page's change."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support import settings_for, wait_for

from gateway.app import create_app
from gateway.auth.principal import KeyScope
from gateway.auth.store import KeyStore
from gateway.console.sessions import SESSION_COOKIE
from gateway.settings import Settings
from gateway.triton import TritonServer

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Console:
    """One gateway with auth on; keys by name; a browser-like client per key."""

    def __init__(self, app_client: TestClient, settings: Settings) -> None:
        self.app_client, self.settings = app_client, settings
        self.keys: dict[str, str] = {}
        self.key_ids: dict[str, str] = {}

    def key(self, name: str, tenant: str, scope: KeyScope) -> str:
        with KeyStore(self.settings.keys_path) as store:
            created, _ = store.create(tenant, scope)
        self.keys[name], self.key_ids[name] = created.secret_key, created.key_id
        return created.secret_key

    def browser(self) -> TestClient:
        """A fresh cookie jar on the same app and event loop (the fixture's lifespan)."""
        browser = TestClient(self.app_client.app, follow_redirects=False)
        browser.portal = self.app_client.portal
        return browser

    def signed_in(self, name: str) -> TestClient:
        browser = self.browser()
        sign_in(browser, self.keys[name])
        return browser

    def api(self, name: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[name]}"}
        return self.app_client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]

    def add(self, name: str, user: str, text: str, **extra: object) -> str:
        response = self.api(name, "POST", "/v1/memories",
                            json={"user_id": user, "text": text, **extra})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])


def token(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(browser: TestClient, key: str) -> httpx.Response:
    form = browser.get("/console/login")
    assert form.status_code == 200
    return browser.post("/console/login", data={"csrf": token(form.text), "api_key": key})


@pytest.fixture(scope="module")
def console(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    settings = settings_for(triton, tmp_path_factory.mktemp("console-data"), auth="required")
    with TestClient(create_app(settings)) as client:
        c = Console(client, settings)
        c.key("writer", "acme", KeyScope.WRITE)
        c.key("reader", "acme", KeyScope.READ)
        c.key("other", "globex", KeyScope.WRITE)
        c.key("admin", "acme", KeyScope.ADMIN)
        c.key("operator", "ops", KeyScope.OPERATOR)
        yield c


def test_pages_need_a_signed_in_key(console: Console) -> None:
    browser = console.browser()
    for path in ("/console/", "/console/memories?user_id=u", "/console/search", "/console/jobs"):
        answer = browser.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    # an API key in a header does not sign a browser in either: the console wants a session
    answer = browser.get("/console/", headers={"X-API-Key": console.keys["writer"]})
    assert answer.status_code == 303


def test_sign_in_keeps_the_key_on_the_server(console: Console) -> None:
    browser = console.browser()
    refused = sign_in(browser, console.keys["writer"] + "x")
    assert refused.status_code == 401 and "invalid API key" in refused.text
    answer = sign_in(browser, console.keys["writer"])
    assert answer.status_code == 303 and answer.headers["location"] == "/console/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert console.keys["writer"] not in cookie and console.keys["writer"] not in \
        answer.headers["location"]
    home = browser.get("/console/")
    assert home.status_code == 200
    assert 'id="tenant">acme<' in home.text and 'id="scope">write<' in home.text
    # signing out ends the session on the server: the old cookie opens nothing
    session = browser.cookies.get(SESSION_COOKIE)
    out = browser.post("/console/logout", data={"csrf": token(home.text)})
    assert out.status_code == 303
    replay = console.browser()
    replay.cookies.set(SESSION_COOKIE, session, path="/console")
    assert replay.get("/console/").status_code == 303


def test_sign_in_form_needs_its_own_token(console: Console) -> None:
    browser = console.browser()
    answer = browser.post("/console/login", data={"csrf": "x", "api_key": console.keys["writer"]})
    assert answer.status_code == 403
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_a_revoked_key_ends_its_sessions(console: Console) -> None:
    console.key("short-lived", "acme", KeyScope.WRITE)
    browser = console.signed_in("short-lived")
    assert browser.get("/console/").status_code == 200
    with KeyStore(console.settings.keys_path) as store:
        assert store.revoke(console.key_ids["short-lived"])
    assert browser.get("/console/").status_code == 303


def test_console_pages_send_a_strict_policy_and_the_security_headers(console: Console) -> None:
    browser = console.signed_in("writer")
    answer = browser.get("/console/")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert "http://" not in answer.text.replace("http://testserver", "") and "https://" \
        not in answer.text
    css = browser.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert browser.get("/console/static/..%2Fauth.py").status_code == 404


def test_memory_text_is_escaped(console: Console) -> None:
    text = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'
    memory_id = console.add("writer", "escaper", text, metadata={"note": "<b>bold</b>"})
    browser = console.signed_in("writer")
    for path in (f"/console/memories/{memory_id}", "/console/memories?user_id=escaper",
                 f"/console/memories/{memory_id}/edit"):
        page = browser.get(path).text
        assert "<script>document" not in page and "<img src=x" not in page
        assert "&lt;script&gt;document.title=" in page
    assert "<b>bold</b>" not in browser.get(f"/console/memories/{memory_id}").text


def test_posts_without_the_sessions_token_change_nothing(console: Console) -> None:
    memory_id = console.add("writer", "csrf-user", "kept despite the forged posts")
    browser = console.signed_in("writer")
    page = browser.get(f"/console/memories/{memory_id}/delete").text
    good = token(page)
    for data, headers in (({}, {}), ({"csrf": "forged"}, {}),
                          ({"csrf": good}, {"Origin": "https://evil.example"})):
        answer = browser.post(f"/console/memories/{memory_id}/delete", data=data,
                              headers=headers)
        assert answer.status_code == 403 and "CSRF" in answer.text
    # another session's token is not this session's
    other = console.signed_in("writer")
    answer = other.post(f"/console/memories/{memory_id}/delete", data={"csrf": good})
    assert answer.status_code == 403
    assert console.api("writer", "GET", f"/v1/memories/{memory_id}").status_code == 200


def test_a_read_key_sees_but_cannot_change(console: Console) -> None:
    memory_id = console.add("writer", "reader-user", "a read key cannot touch this")
    browser = console.signed_in("reader")
    page = browser.get(f"/console/memories/{memory_id}/edit")
    assert page.status_code == 200
    answer = browser.post(f"/console/memories/{memory_id}/edit",
                          data={"csrf": token(page.text), "text": "changed by a reader"})
    assert answer.status_code == 403 and "this call needs &#39;write&#39;" in answer.text
    for path, data in ((f"/console/memories/{memory_id}/delete", {}),
                       ("/console/users/erase", {"user_id": "reader-user",
                                                 "confirm": "reader-user"}),
                       ("/console/jobs", {"kind": "merge", "user_id": "reader-user"})):
        assert browser.post(path, data={"csrf": token(page.text), **data}).status_code == 403
    stored = console.api("writer", "GET", f"/v1/memories/{memory_id}").json()
    assert stored["text"] == "a read key cannot touch this"


def test_another_tenants_memory_is_not_found(console: Console) -> None:
    memory_id = console.add("writer", "alice", "acme's own memory")
    browser = console.signed_in("other")
    assert browser.get(f"/console/memories/{memory_id}").status_code == 404
    page = browser.get("/console/")
    answer = browser.post(f"/console/memories/{memory_id}/delete",
                          data={"csrf": token(page.text)})
    assert answer.status_code == 404
    listed = browser.get("/console/memories?user_id=alice").text
    assert "No memories." in listed and "acme&#39;s own memory" not in listed
    assert console.api("writer", "GET", f"/v1/memories/{memory_id}").status_code == 200


def test_edit_then_history_then_delete(console: Console) -> None:
    memory_id = console.add("writer", "editor", "the cat is called Tom")
    browser = console.signed_in("writer")
    form = browser.get(f"/console/memories/{memory_id}/edit")
    same = browser.post(f"/console/memories/{memory_id}/edit",
                        data={"csrf": token(form.text), "text": "the cat is called Tom"})
    assert same.status_code == 422 and "nothing changed" in same.text
    bad = browser.post(f"/console/memories/{memory_id}/edit",
                       data={"csrf": token(form.text), "priority": "11"})
    assert bad.status_code == 422 and "priority" in bad.text
    saved = browser.post(f"/console/memories/{memory_id}/edit",
                         data={"csrf": token(form.text), "text": "the cat is called Felix",
                               "priority": "8"})
    assert saved.status_code == 303
    stored = console.api("writer", "GET", f"/v1/memories/{memory_id}").json()
    assert (stored["text"], stored["priority"]) == ("the cat is called Felix", 8)
    page = browser.get(f"/console/memories/{memory_id}").text
    assert "UPDATE" in page and "the cat is called Tom" in page
    deleted = browser.post(f"/console/memories/{memory_id}/delete",
                           data={"csrf": token(page)})
    assert deleted.status_code == 303 and "user_id=editor" in deleted.headers["location"]
    assert console.api("writer", "GET", f"/v1/memories/{memory_id}").status_code == 404
    after = browser.get(f"/console/memories/{memory_id}")
    assert after.status_code == 200 and 'id="deleted"' in after.text and "DELETE" in after.text


def test_erase_needs_the_typed_user_id(console: Console) -> None:
    memory_id = console.add("writer", "erasable", "to be erased")
    browser = console.signed_in("writer")
    page = browser.get("/console/users/erase?user_id=erasable").text
    wrong = browser.post("/console/users/erase",
                         data={"csrf": token(page), "user_id": "erasable", "confirm": "erasabl"})
    assert wrong.status_code == 422
    assert console.api("writer", "GET", f"/v1/memories/{memory_id}").status_code == 200
    done = browser.post("/console/users/erase",
                        data={"csrf": token(page), "user_id": "erasable", "confirm": "erasable"})
    assert done.status_code == 303 and "erased" in done.headers["location"]
    assert console.api("writer", "GET", f"/v1/memories/{memory_id}").status_code == 404
    # erase=true semantics: no history left either
    assert browser.get(f"/console/memories/{memory_id}").status_code == 404


def test_list_filters_and_pages(console: Console) -> None:
    for i in range(5):
        console.add("writer", "lister", f"note number {i} about gardening",
                    agent_id="planner" if i % 2 else "helper")
    browser = console.signed_in("writer")
    helper = browser.get("/console/memories?user_id=lister&agent_id=helper&limit=20").text
    assert helper.count('class="open"') == 3
    first = browser.get("/console/memories?user_id=lister&limit=2&order=oldest").text
    assert first.count('class="open"') == 2 and 'id="next-page"' in first
    assert "note number 0" in first
    bad = browser.get("/console/memories?user_id=%1Fx")
    assert bad.status_code == 422


def test_search_shows_each_part_of_the_score(console: Console) -> None:
    console.add("writer", "searcher", "I adopted a dog named Biscuit", priority=9)
    for other in ("the weather was rainy on Tuesday", "lunch was a sandwich",
                  "the train was late again", "a new phone arrived"):
        console.add("writer", "searcher", other)  # BM25 needs a word to be rare to weigh it
    browser = console.signed_in("writer")
    page = browser.get("/console/search", params={
        "user_id": "searcher", "q": "dog Biscuit", "mode": "hybrid", "half_life": "30",
        "priority_weight": "0.5"})
    assert page.status_code == 200, page.text
    rows = page.text.split('<tbody>')[1]
    first = rows.split("</tr>")[0]
    assert "Biscuit" in first
    semantic = re.search(r'class="num semantic">([^<]+)<', first)
    keyword = re.search(r'class="num keyword">([^<]+)<', first)
    priority = re.search(r'class="num priority">([^<]+)<', first)
    assert semantic and -1 <= float(semantic.group(1)) <= 1
    assert keyword and float(keyword.group(1)) > 0
    assert priority and float(priority.group(1).split()[0]) == pytest.approx(1.4)
    refused = browser.get("/console/search", params={"user_id": "searcher", "q": "x",
                                                      "priority_weight": "3"})
    assert refused.status_code == 422 and "priority_weight" in refused.text


def test_a_job_started_from_the_console(console: Console) -> None:
    console.add("writer", "jobber", "one memory to expire over")
    browser = console.signed_in("writer")
    page = browser.get("/console/jobs")
    assert 'id="recent-jobs"' not in page.text  # the list is for admin keys
    started = browser.post("/console/jobs", data={"csrf": token(page.text), "kind": "expire",
                                                  "user_id": "jobber"})
    assert started.status_code == 303
    job_id = started.headers["location"].split("job=")[1]
    shown = browser.get(f"/console/jobs?job={job_id}")
    assert 'id="job-status"' in shown.text and "expire" in shown.text
    every = browser.post("/console/jobs", data={"csrf": token(page.text), "kind": "expire"})
    assert every.status_code == 403  # every user: an admin key's
    admin = console.signed_in("admin")
    listed = admin.get("/console/jobs").text
    assert job_id[:8] in listed
    assert "prune" not in admin.get("/console/jobs").text.split('id="kind"')[1].split(
        "</select>")[0]


def test_service_pages_are_for_operators(console: Console) -> None:
    for name in ("writer", "admin"):
        browser = console.signed_in(name)
        assert 'id="nav-service"' not in browser.get("/console/").text
        assert browser.get("/console/service").status_code == 403
        assert browser.get("/console/models").status_code == 403
        answer = browser.post("/console/models/activate",
                              data={"csrf": token(browser.get("/console/").text),
                                    "model": "embedder", "version": "1"})
        assert answer.status_code == 403
    operator = console.signed_in("operator")
    service = operator.get("/console/service")
    assert service.status_code == 200 and 'id="latency"' in service.text
    assert "/v1/memories" in service.text  # the requests the other tests made
    assert "/console/memories/{memory_id}" in service.text  # full templates, prefix and all
    models = operator.get("/console/models")
    assert models.status_code == 200 and 'id="model-embedder"' in models.text


def test_auth_off_is_the_local_user_with_csrf_still_on(triton: TritonServer,
                                                       tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", auth="off")
    with TestClient(create_app(settings), follow_redirects=False) as browser:
        home = browser.get("/console/")
        assert home.status_code == 200 and 'id="auth-off"' in home.text
        assert browser.get("/console/login").status_code == 303
        added = browser.post("/v1/memories", json={"user_id": "local", "text": "mine"})
        memory_id = added.json()["id"]
        assert browser.post(f"/console/memories/{memory_id}/delete").status_code == 403
        assert browser.get(f"/v1/memories/{memory_id}").status_code == 200
        assert browser.get("/console/service").status_code == 200


def test_console_off(triton: TritonServer, tmp_path: Path) -> None:
    settings = settings_for(triton, tmp_path / "data", auth="off", console=False)
    with TestClient(create_app(settings)) as client:
        assert client.get("/console/").status_code == 404


def test_users_page_lists_the_tenants_users_with_counts(console: Console) -> None:
    for i in range(3):
        console.add("other", "globex-user", f"globex memory {i}")
    mine = console.signed_in("other").get("/console/").text
    assert 'globex-user</a></td>\n  <td class="num">3</td>' in mine
    theirs = console.signed_in("writer").get("/console/").text
    assert "globex-user" not in theirs
    after = console.signed_in("other").get("/console/?after=globex-user").text
    assert "globex-user</a>" not in after and "No users after" in after


def test_archive_links_between_a_summary_and_its_sources(console: Console) -> None:
    texts = [f"I cooked {dish} for dinner" for dish in ("pasta", "risotto", "curry", "ramen",
                                                         "paella", "tacos")]
    texts += [f"I travelled to {city} by train" for city in ("Lyon", "Porto", "Turin", "Ghent",
                                                              "Basel", "Graz")]
    answer = console.api("writer", "POST", "/v1/memories/batch", json={"dedup": False, "items": [
        {"user_id": "archivist", "text": t, "occurred_at": f"2024-01-{i + 1:02d}T10:00:00Z"}
        for i, t in enumerate(texts)]})
    assert answer.status_code == 201, answer.text
    started = console.api("writer", "POST", "/v1/jobs",
                          json={"kind": "compress", "user_id": "archivist"})
    job_id = started.json()["id"]

    def ended() -> dict | None:
        job = console.api("writer", "GET", f"/v1/jobs/{job_id}").json()
        return job if job["status"] in ("done", "failed") else None

    assert wait_for(ended, "the compress job")["status"] == "done"
    everything = console.api("writer", "GET", "/v1/memories", params={
        "user_id": "archivist", "include_archived": "true", "limit": 100}).json()["results"]
    summary = next(m for m in everything if m["sources"])
    browser = console.signed_in("writer")
    page = browser.get(f"/console/memories/{summary['id']}").text
    for source in summary["sources"]:
        assert f'href="/console/memories/{source}"' in page
    archived = browser.get(f"/console/memories/{summary['sources'][0]}").text
    assert f'id="summary-link" href="/console/memories/{summary["id"]}"' in archived
    listing = browser.get("/console/memories?user_id=archivist&archived=true&limit=100").text
    archived_count = sum(1 for m in everything if m["archived_at"])
    assert archived_count >= len(summary["sources"]) >= 2
    assert listing.count('<span class="tag">archived</span>') == archived_count
    assert "archived</span>" not in browser.get("/console/memories?user_id=archivist").text


def test_a_console_search_is_admitted_like_an_api_search(triton: TritonServer,
                                                         tmp_path: Path) -> None:
    """With the search class full (one slot, no queue), the console's search is shed (429 page)
    as the API's would be; the slot freed, it answers."""
    settings = settings_for(triton, tmp_path / "data", auth="off", admission_search_limit=1,
                            admission_search_queue=0, admission_tenant_share=0)
    with TestClient(create_app(settings), follow_redirects=False) as browser:
        browser.post("/v1/memories", json={"user_id": "u", "text": "a memory to find"})
        admission = browser.app.state.gateway.admission  # type: ignore[attr-defined]
        held = admission.slot("search", tenant="tenant:someone-else")
        browser.portal.call(held.__aenter__)
        try:
            shed = browser.get("/console/search", params={"user_id": "u", "q": "memory"})
            assert shed.status_code == 429
        finally:
            browser.portal.call(held.__aexit__, None, None, None)
        answer = browser.get("/console/search", params={"user_id": "u", "q": "memory"})
        assert answer.status_code == 200 and "a memory to find" in answer.text
