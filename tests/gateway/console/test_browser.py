"""The console in a real headless Chromium against a real gateway (uvicorn, auth on, real
Triton and SQLite): sign in, pick a user, list, search, a memory's history, edit, delete, a job
run, erase a user, a read key's refused change, a post without its CSRF token, and memory text
holding a script that stays text. Every page is saved as a PNG (``support.browser``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support.browser import chromium_or_skip, screenshot
from support.servers import LiveGateway, free_ports, serving, settings_for
from support.waiting import wait_for

from gateway.auth.principal import KeyScope
from gateway.triton import TritonServer

pytestmark = pytest.mark.timeout(600)
SCRIPT_TEXT = ("<script>document.title='owned'</script>"
               "<img src=x onerror=\"document.title='owned'\">")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = chromium_or_skip()
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def gateway(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[LiveGateway, dict[str, str]]]:
    [port] = free_ports(1)
    settings = settings_for(triton, tmp_path_factory.mktemp("console-browser"),
                            auth="required", port=port)
    with serving(settings) as url:
        live = LiveGateway(url, settings)
        keys = {"writer": live.key("acme", KeyScope.WRITE),
                "reader": live.key("acme", KeyScope.READ),
                "operator": live.key("ops", KeyScope.OPERATOR)}
        headers = {"Authorization": f"Bearer {keys['writer']}"}
        items = [{"user_id": "alice", "text": text, "agent_id": agent}
                 for text, agent in (("Alice adopted a beagle called Biscuit", "pets"),
                                     ("Alice's favourite food is ramen", "food"),
                                     ("Alice walks Biscuit every morning at seven", "pets"),
                                     ("Alice is allergic to peanuts", "food"))]
        items.append({"user_id": "mallory", "text": SCRIPT_TEXT})
        items.append({"user_id": "bob", "text": "Bob moves to Lisbon in May"})
        answer = httpx.post(f"{url}/v1/memories/batch", json={"items": items}, headers=headers,
                            timeout=60)
        assert answer.status_code == 201, answer.text
        yield live, keys


def go(driver: Any, live: LiveGateway, path: str) -> None:
    driver.get(f"{live.url}/console{path}")


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def click(driver: Any, selector: str) -> None:
    """Click a link or button that loads a page, and wait until the new page has replaced the
    old one (a click returns before the navigation)."""
    old = css(driver, "html")
    css(driver, selector).click()
    wait_for(lambda: is_stale(old), f"the page after clicking {selector}")


def is_stale(element: Any) -> bool:
    """True once the element's page is gone. Mid-navigation chromedriver may answer with a
    generic inspector error ("Node with given id does not belong to the document") instead of
    a stale-reference error: both mean the old document was replaced."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.tag_name  # noqa: B018 (touching it raises once the page is gone)
    except StaleElementReferenceException:
        return True
    except WebDriverException as error:
        if "does not belong to the document" in str(error):
            return True
        raise
    return False


def sign_in(driver: Any, live: LiveGateway, key: str) -> None:
    driver.delete_all_cookies()
    go(driver, live, "/login")
    css(driver, "#api-key").send_keys(key)
    click(driver, "#sign-in")
    wait_for(lambda: "/console/" in driver.current_url and "login" not in driver.current_url,
             "the console after signing in")


def memory_ids(live: LiveGateway, key: str, user: str) -> dict[str, str]:
    answer = httpx.get(f"{live.url}/v1/memories", params={"user_id": user},
                       headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return {m["text"]: m["id"] for m in answer.json()["results"]}


def test_sign_in_and_pick_a_user(browser: Any, gateway: tuple[LiveGateway, dict[str, str]]
                                 ) -> None:
    live, keys = gateway
    browser.delete_all_cookies()
    go(browser, live, "/")
    assert browser.current_url.endswith("/console/login")  # not signed in: the form
    screenshot(browser, "01-sign-in")
    sign_in(browser, live, keys["writer"])
    assert css(browser, "#tenant").text == "acme"
    assert "alice" in css(browser, "#users").text
    screenshot(browser, "02-users")
    from selenium.webdriver.common.by import By

    old = css(browser, "html")
    browser.find_element(By.LINK_TEXT, "alice").click()
    wait_for(lambda: is_stale(old), "the memories of alice")
    rows = browser.find_elements(By.CSS_SELECTOR, "#memories tbody tr")
    assert len(rows) == 4
    css(browser, "#agent-id").send_keys("pets")
    click(browser, "#list")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#memories tbody tr")) == 2
    screenshot(browser, "03-memories")


def test_search_shows_how_each_result_scored(browser: Any,
                                             gateway: tuple[LiveGateway, dict[str, str]]) -> None:
    live, keys = gateway
    sign_in(browser, live, keys["writer"])
    go(browser, live, "/search?user_id=alice")
    css(browser, "#query").send_keys("beagle Biscuit")
    css(browser, "#half-life").send_keys("30")
    click(browser, "#search")
    first = css(browser, "#results tbody tr")
    assert "Biscuit" in first.text
    assert float(css(browser, "#results tbody tr td.semantic").text) > 0
    assert css(browser, "#results tbody tr td.recency").text != "—"
    screenshot(browser, "04-search")


def test_history_edit_and_delete(browser: Any, gateway: tuple[LiveGateway, dict[str, str]]
                                 ) -> None:
    live, keys = gateway
    sign_in(browser, live, keys["writer"])
    memory_id = memory_ids(live, keys["writer"], "alice")["Alice's favourite food is ramen"]
    go(browser, live, f"/memories/{memory_id}")
    click(browser, "#edit")
    text = css(browser, "#text")
    text.clear()
    text.send_keys("Alice's favourite food is pho")
    screenshot(browser, "05-edit")
    click(browser, "#save")
    wait_for(lambda: "/edit" not in browser.current_url, "the memory page after saving")
    assert css(browser, "#memory-text").text == "Alice's favourite food is pho"
    history = css(browser, "#history").text
    assert "UPDATE" in history and "ramen" in history
    screenshot(browser, "06-memory-history")
    click(browser, "#delete")
    screenshot(browser, "07-delete-confirm")
    click(browser, "#confirm-delete")
    wait_for(lambda: "done=" in browser.current_url, "the list after deleting")
    assert "deleted memory" in css(browser, "#done").text
    assert "pho" not in css(browser, "#memories").text
    assert "Alice's favourite food is pho" not in memory_ids(live, keys["writer"], "alice")


def test_a_job_run(browser: Any, gateway: tuple[LiveGateway, dict[str, str]]) -> None:
    live, keys = gateway
    sign_in(browser, live, keys["writer"])
    go(browser, live, "/jobs")
    from selenium.webdriver.support.ui import Select

    Select(css(browser, "#kind")).select_by_visible_text("merge")
    css(browser, "#job-user").send_keys("alice")
    click(browser, "#run-job")
    wait_for(lambda: "job=" in browser.current_url, "the job's page")

    def finished() -> bool:
        browser.refresh()
        return css(browser, "#job-status").text in ("done", "failed")

    wait_for(finished, "the merge job to finish", 120, poll_s=0.5)
    assert css(browser, "#job-status").text == "done"
    assert "users_done" in css(browser, "#job-progress").text
    screenshot(browser, "08-jobs")


def test_a_read_key_is_refused_a_change(browser: Any,
                                        gateway: tuple[LiveGateway, dict[str, str]]) -> None:
    live, keys = gateway
    sign_in(browser, live, keys["reader"])
    memory_id = memory_ids(live, keys["writer"], "bob")["Bob moves to Lisbon in May"]
    go(browser, live, f"/memories/{memory_id}")
    click(browser, "#edit")
    text = css(browser, "#text")
    text.clear()
    text.send_keys("changed by a read key")
    click(browser, "#save")
    assert "Not allowed" in css(browser, "h1").text
    assert "this call needs 'write'" in css(browser, "#errors").text
    screenshot(browser, "09-read-key-refused")
    assert "Bob moves to Lisbon in May" in memory_ids(live, keys["writer"], "bob")


def test_a_post_without_the_csrf_token_is_refused(browser: Any,
                                                  gateway: tuple[LiveGateway, dict[str, str]]
                                                  ) -> None:
    live, keys = gateway
    sign_in(browser, live, keys["writer"])
    memory_id = memory_ids(live, keys["writer"], "bob")["Bob moves to Lisbon in May"]
    go(browser, live, f"/memories/{memory_id}/delete")
    browser.execute_script("document.querySelector('#delete-form input[name=csrf]').remove()")
    click(browser, "#confirm-delete")
    assert "Not allowed" in css(browser, "h1").text and "CSRF" in css(browser, "#errors").text
    screenshot(browser, "10-csrf-refused")
    assert "Bob moves to Lisbon in May" in memory_ids(live, keys["writer"], "bob")


def test_a_stored_script_stays_text(browser: Any,
                                    gateway: tuple[LiveGateway, dict[str, str]]) -> None:
    live, keys = gateway
    sign_in(browser, live, keys["writer"])
    go(browser, live, "/memories?user_id=mallory")
    memory_id = memory_ids(live, keys["writer"], "mallory")[SCRIPT_TEXT]
    go(browser, live, f"/memories/{memory_id}")
    assert css(browser, "#memory-text").text == SCRIPT_TEXT  # shown as text, tags and all
    assert browser.title != "owned"
    assert browser.execute_script("return document.querySelectorAll('main script, main img')"
                                  ".length") == 0
    screenshot(browser, "11-escaped-script")


def test_erase_a_user(browser: Any, gateway: tuple[LiveGateway, dict[str, str]]) -> None:
    live, keys = gateway
    sign_in(browser, live, keys["writer"])
    go(browser, live, "/memories?user_id=bob")
    click(browser, "#erase-user")
    css(browser, "#confirm").send_keys("bob")
    screenshot(browser, "12-erase-confirm")
    click(browser, "#confirm-erase")
    wait_for(lambda: "done=" in browser.current_url, "the users page after erasing")
    assert "erased user bob: 1 memories" in css(browser, "#done").text
    assert memory_ids(live, keys["writer"], "bob") == {}


def test_operator_pages(browser: Any, gateway: tuple[LiveGateway, dict[str, str]]) -> None:
    live, keys = gateway
    sign_in(browser, live, keys["writer"])
    go(browser, live, "/service")
    assert "Not allowed" in css(browser, "h1").text  # not an operator: 403
    sign_in(browser, live, keys["operator"])
    click(browser, "#nav-models")
    assert css(browser, "#model-embedder .active").text not in ("", "—")
    screenshot(browser, "13-models")
    click(browser, "#nav-service")
    assert "/v1/memories" in css(browser, "#latency").text
    screenshot(browser, "14-service")
    click(browser, "#sign-out")
    wait_for(lambda: browser.current_url.endswith("/console/login"), "the sign-in form")
