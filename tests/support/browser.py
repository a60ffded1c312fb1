"""A real headless Chromium for the console's browser tests: Debian's ``chromium`` and
``chromium-driver`` (``make test`` installs them) driven by Selenium, and the folder its
screenshots go to (``$CONSOLE_SCREENSHOTS``, else ``tests/artifacts/console/``, git-ignored).

Where the browser cannot be started, ``chromium_or_skip`` skips with the reason, so a run
without it says so instead of passing quietly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS_ENV = "CONSOLE_SCREENSHOTS"


def screenshot_dir() -> Path:
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or ROOT / "tests" / "artifacts" / "console")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_or_skip() -> Any:
    """A started headless Chromium (``selenium.webdriver.Chrome``), or a skip with the reason."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.skip(f"browser tests: selenium is not installed ({exc}); run `make test`")
    binary = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or CHROMIUM)
    driver_path = CHROMEDRIVER if CHROMEDRIVER.exists() else Path(
        shutil.which("chromedriver") or CHROMEDRIVER)
    if not binary.exists() or not driver_path.exists():
        pytest.skip(f"browser tests: {binary} or {driver_path} is missing (apt-get install "
                    "chromium chromium-driver; `make test` does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,900", "--no-first-run",
                     "--disable-extensions", "--disable-background-networking"):
        options.add_argument(argument)
    try:
        return webdriver.Chrome(options=options, service=Service(str(driver_path)))
    except WebDriverException as exc:
        pytest.skip(f"browser tests: Chromium did not start: {exc.msg}")


SAVED: list[Path] = []  # this run's screenshots (the console tests' conftest reports them)


def screenshot(driver: Any, name: str) -> Path:
    """A PNG of the page the browser shows, named after it."""
    path = screenshot_dir() / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot saved for {name}"
    SAVED.append(path)
    return path
