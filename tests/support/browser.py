"""A real headless Chromium for the console's tests, driven through its chromedriver.

The distribution's packages (deploy/local/install-browser.sh installs them), or the
binaries OMNIHOOKS_TEST_CHROME and OMNIHOOKS_TEST_CHROMEDRIVER name. Missing, the tests
fail with what to install: they never skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.files import REPO
from tests.support.harness import wait_until

SCREENSHOTS = Path(os.environ.get("OMNIHOOKS_TEST_OUTPUT", REPO / ".test-output")) / "console"


def _binary(env: str, *names: str) -> str:
    given = os.environ.get(env)
    found = given or next((p for p in map(shutil.which, names) if p), None)
    if not found or not os.access(found, os.X_OK):
        pytest.fail(
            f"no {names[0]} for the console's browser tests: run "
            f"deploy/local/install-browser.sh (or set {env})",
            pytrace=False,
        )
    return found


def chromium() -> Any:
    """A headless Chromium session (Selenium's WebDriver)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _binary(
        "OMNIHOOKS_TEST_CHROME", "chromium", "chromium-browser", "google-chrome"
    )
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1440,1000", "--disable-extensions", "--no-first-run"):  # fmt: skip
        options.add_argument(flag)
    service = Service(executable_path=_binary("OMNIHOOKS_TEST_CHROMEDRIVER", "chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    return driver


def screenshot(driver: Any, name: str) -> Path:
    """The whole page, saved under .test-output/console/ (OMNIHOOKS_TEST_OUTPUT)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1440, max(700, min(int(height) + 40, 4000)))
    driver.save_screenshot(str(path))
    driver.set_window_size(1440, 1000)
    return path


def wait_for_page(
    driver: Any, url: str, shows: Callable[[Any], bool], timeout_s: float, failure: str
) -> None:
    """Load `url` again until `shows(driver)`; a failure message with the page's text."""

    def loaded() -> bool:
        driver.get(url)
        return shows(driver)

    wait_until(loaded, timeout_s, lambda: f"{failure}; the page said:\n{text(driver)[:3000]}")


def text(driver: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.TAG_NAME, "body").text)


def click_and_load(driver: Any, element: Any, timeout_s: float = 30.0) -> None:
    """Click what submits a form or follows a link, and wait for the next page to load.

    The old page is marked in its window object; a new document has no mark. (Waiting for
    the old page's element to go stale races with the navigation: Chrome can answer "node
    does not belong to the document" while it swaps documents, and a page that reloads
    itself, like the task page, may already have swapped once.)"""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("window.omnihooksOldPage = true")
    element.click()

    def loaded(d: Any) -> bool:
        try:
            return bool(d.execute_script(
                "return !window.omnihooksOldPage && document.readyState === 'complete'"
            ))  # fmt: skip
        except WebDriverException:
            return False  # between two documents

    WebDriverWait(driver, timeout_s, ignored_exceptions=(WebDriverException,)).until(loaded)


def attribute(driver: Any, css: str, name: str) -> str | None:
    """An element's attribute now, or None while the page is reloading (a refreshing page)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        value = driver.find_element(By.CSS_SELECTOR, css).get_attribute(name)
    except (NoSuchElementException, StaleElementReferenceException):
        return None
    return None if value is None else str(value)


def element(driver: Any, by: str, value: str) -> Any:
    """The element, or a failure that shows the page that lacks it."""
    from selenium.common.exceptions import NoSuchElementException

    try:
        return driver.find_element(by, value)
    except NoSuchElementException:
        raise AssertionError(
            f"no {value!r} on {driver.current_url}; the page said:\n{text(driver)[:3000]}"
        ) from None
