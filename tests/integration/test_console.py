"""`omnihooks console` in a real headless Chromium, against the real broker, a real worker
and a receiver whose endpoint fails: the page shows the failing endpoint and its dead
letters, a replay from the page reaches a new URL, and nothing changes without the token."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from msgspec.structs import replace

from streams.core.endpoints import endpoint_label
from streams.settings import Settings
from tests.conftest import Broker
from tests.integration.test_delivery import make_job, send_jobs
from tests.support.browser import (
    attribute,
    chromium,
    click_and_load,
    element,
    screenshot,
    text,
    wait_for_page,
)
from tests.support.harness import (
    TopicReader,
    WorkerProcess,
    free_port,
    omnihooks_cli,
    wait_until,
)
from tests.support.receiver import Receiver
from topics import codec
from topics.catalogue import Topic

# Kills workers or starts brokers on a timeline: one at a time, not beside each other.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("heavy")]

OPS_TOKEN = "ops-token-0123456789abcdef"
CRM_TOKEN = "crm-secret-token-5f1e"
VISITOR_TOKEN = "visitor-token-9c2b7a"
SECRETS = (OPS_TOKEN, CRM_TOKEN, VISITOR_TOKEN)


@dataclass
class ConsoleProcess(WorkerProcess):
    port: int = 0
    workers: tuple[str, ...] = ()

    def argv(self) -> list[str]:
        workers = [arg for w in self.workers for arg in ("--worker", w)]
        return ["console", "--port", str(self.port), *workers]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def browser() -> Iterator[Any]:
    driver = chromium()
    yield driver
    driver.quit()


def cells(driver: Any, selector: str) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, selector)
    return [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")] if rows else []


def no_secret_in(driver: Any) -> None:
    source = driver.page_source
    for secret in SECRETS:
        assert secret not in source, f"{secret!r} is on {driver.current_url}"


def test_console_shows_a_failing_endpoint_and_replays_its_dead_letters_from_the_page(
    kafka: Broker,
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    start_worker: Callable[..., WorkerProcess],
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
    browser: Any,
    tmp_path: Path,
) -> None:

    web_port = free_port()
    settings = settings_factory(
        retry_attempts=1, retry_delay_s=0.1, web_enabled=True, web_port=web_port,
        secret_token=CRM_TOKEN, console_token=f"ops:{OPS_TOKEN}", console_scrape_s=1.0,
    )  # fmt: skip
    worker = start_worker(settings)
    console = ConsoleProcess(settings, "console", tmp_path / "console.log", port=free_port(),
                             workers=(f"http://127.0.0.1:{web_port}",))  # fmt: skip
    console.start()
    try:
        _walk_through(kafka, settings, applied_topics, worker, console, receiver, read_topic,
                      browser)  # fmt: skip
    finally:
        console.stop()
        print(f"--- console.log ---\n{console.tail(60)}")


def _walk_through(
    kafka: Broker,
    settings: Settings,
    topics: dict[Topic, str],
    worker: WorkerProcess,
    console: ConsoleProcess,
    receiver: Receiver,
    read_topic: Callable[[str], TopicReader],
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By

    base = console.url
    console.wait_for_log("console on http://")
    # The console counts from its first reading of the worker: wait for it before any job.
    wait_for_page(browser, f"{base}/", lambda d: bool(d.find_elements(By.CSS_SELECTOR,
                  "ul.workers li.up")), 120, "the console never read the worker's /metrics")  # fmt: skip

    failing_url, ok_url, new_url = (receiver.url(p) for p in ("/status/503", "/ok", "/ok/new"))
    failing = [make_job(failing_url, n, room=f"room-{n}") for n in range(3)]
    failing = [replace(j, body={**j.body, "visitor": {"token": VISITOR_TOKEN}}) for j in failing]
    healthy = [make_job(ok_url, 10 + n, room=f"room-ok-{n}") for n in range(4)]
    send_jobs(kafka, topics[Topic.WEBHOOK_JOBS], failing + healthy)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "acks": "all"})
    producer.produce(topics[Topic.ROOMS], key=b"room-x", value=b"{not json")
    assert producer.flush(30) == 0
    read_topic(topics[Topic.WEBHOOK_DEAD_LETTERS]).wait_for(3, timeout_s=90)
    read_topic(topics[Topic.REJECTED]).wait_for(1, timeout_s=90)
    receiver.wait_for("/ok", 4, timeout_s=60)

    # Overview: the failing endpoint, its failed attempts, dead letters and POST times.
    failing_row = f'#endpoints tr[data-endpoint="{endpoint_label(failing_url)}"]'
    ok_row = f'#endpoints tr[data-endpoint="{endpoint_label(ok_url)}"]'

    def overview_counts(d: Any) -> bool:
        bad, good = cells(d, failing_row), cells(d, ok_row)
        # Endpoint, State, Delivered, Failed attempts, Dead-lettered, Waiting, Open DL, p50, p99
        return bool(bad and good) and bad[2:7] == ["0", "6", "3", "0", "3"] and good[2] == "4"

    wait_for_page(browser, f"{base}/", overview_counts, 60,
                  "the overview never showed 6 failed attempts and 3 dead letters")  # fmt: skip
    bad = cells(browser, failing_row)
    classes = browser.find_element(By.CSS_SELECTOR, failing_row).get_attribute("class").split()
    assert "failing" in classes and "failing" in bad[1], bad
    assert "healthy" in browser.find_element(By.CSS_SELECTOR, ok_row).get_attribute("class")
    assert re.fullmatch(r"\d+ ms", bad[7]) and re.fullmatch(r"\d+ ms", bad[8]), bad
    no_secret_in(browser)
    overview_png = screenshot(browser, "overview")

    # A page asked for under another host name (DNS rebinding) is refused.
    rebound = httpx.get(f"{base}/dead-letters", headers={"Host": "evil.example"}, timeout=30)
    assert rebound.status_code == 421 and "room-0" not in rebound.text

    # Without the token nothing changes: a script's POST, a browser that has not signed in.
    entry_ids = [f"{j.delivery_id}" for j in failing]
    anonymous = httpx.post(f"{base}/dead-letters/replay", timeout=30, follow_redirects=False,
                           data={"action": "replay-matching", "target_url": new_url})  # fmt: skip
    assert anonymous.status_code == 401 and "Sign in first" in anonymous.text
    wrong = httpx.post(f"{base}/dead-letters/replay", timeout=30,
                       headers={"Authorization": "Bearer not-the-token-000000"},
                       data={"action": "replay-matching", "target_url": new_url})  # fmt: skip
    assert wrong.status_code == 401
    browser.get(f"{base}/dead-letters?status=503")
    element(browser, By.ID, "select-all").click()
    click_and_load(browser, element(browser, By.ID, "replay-selected"))
    assert "Sign in first" in text(browser)

    # Signed in, a session cookie alone (no CSRF token in the form) changes nothing either.
    browser.get(f"{base}/login")
    browser.find_element(By.NAME, "token").send_keys(OPS_TOKEN)
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "form button"))
    assert re.search(r"signed in as\s+ops", text(browser)), text(browser)
    cookie = browser.get_cookie("omnihooks_console")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    forged = httpx.post(f"{base}/dead-letters/replay", timeout=30,
                        cookies={"omnihooks_console": cookie["value"]},
                        data={"action": "replay-matching", "target_url": new_url})  # fmt: skip
    assert forged.status_code == 403 and "CSRF" in forged.text
    assert receiver.at("/ok/new") == []

    # Dead letters: the filter form, one entry expanded to its job, body and attempts.
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Dead letters"))
    browser.find_element(By.NAME, "status").send_keys("5xx")
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, "#filters button"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#dead-letters tr.entry")
    assert len(rows) == 3 and element(browser, By.ID, "match-count").text == "3"
    browser.find_element(By.CSS_SELECTOR, "#dead-letters details summary").click()
    opened = browser.find_element(By.CSS_SELECTOR, "#dead-letters details[open]").text
    assert "503" in opened and "•••• (hidden)" in opened and '"label": "James"' in opened
    no_secret_in(browser)
    screenshot(browser, "dead-letters")

    # Replay the selection to a new URL: confirmation, then progress until done.
    element(browser, By.ID, "select-all").click()
    element(browser, By.ID, "target-url").send_keys(new_url)
    click_and_load(browser, element(browser, By.ID, "replay-selected"))
    question = element(browser, By.ID, "question").text
    assert question == f"Replay 3 dead letters to {endpoint_label(new_url)}?", question
    screenshot(browser, "confirm-replay")
    click_and_load(browser, element(browser, By.ID, "confirm"))
    wait_until(
        lambda: attribute(browser, "#task", "data-state") == "done",
        30, lambda: f"the replay never finished: {text(browser)}",
    )  # fmt: skip
    assert "3 of 3" in element(browser, By.ID, "progress-text").text
    assert element(browser, By.ID, "progress").get_attribute("value") == "3"
    screenshot(browser, "replay-progress")
    got = receiver.wait_for("/ok/new", 3, timeout_s=60)
    assert sorted(r.headers["webhook-id"] for r in got) == sorted(entry_ids)
    assert {r.body for r in got} == {codec.dumps(j.body) for j in failing}
    assert all(r.headers["X-RocketChat-Livechat-Token"] == CRM_TOKEN for r in got)
    console.wait_for_log("ops asked to replay 3 dead letters to " + new_url)

    # Purge one: it leaves the list.
    browser.get(f"{base}/dead-letters?room=room-0")
    browser.find_element(By.CSS_SELECTOR, "#dead-letters input[name=id]").click()
    click_and_load(browser, element(browser, By.ID, "purge-selected"))
    assert element(browser, By.ID, "question").text.startswith("Purge 1 dead letters?")
    click_and_load(browser, element(browser, By.ID, "confirm"))
    wait_until(
        lambda: attribute(browser, "#task", "data-state") == "done",
        30, lambda: f"the purge never finished: {text(browser)}",
    )  # fmt: skip
    browser.get(f"{base}/dead-letters")
    assert element(browser, By.ID, "match-count").text == "2"
    console.wait_for_log("ops asked to purge 1 dead letters")

    # A script with the token: the purge of every match, then its task as JSON.
    scripted = httpx.post(f"{base}/dead-letters/purge", timeout=30,
                          headers={"Authorization": f"Bearer {OPS_TOKEN}"},
                          data={"action": "purge-matching", "f_room": "room-2"})  # fmt: skip
    assert scripted.status_code == 303, scripted.text
    task_url = f"{base}{scripted.headers['Location']}.json"
    wait_until(lambda: httpx.get(task_url, timeout=10).json()["state"] == "done", 30,
               lambda: f"the scripted purge never finished: {httpx.get(task_url).text}")  # fmt: skip
    assert httpx.get(task_url, timeout=10).json()["who"] == "ops"
    browser.get(f"{base}/dead-letters")
    assert element(browser, By.ID, "match-count").text == "1"

    # Rejected input: the record and its reason.
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Rejected input"))
    rejected = cells(browser, "#rejected tbody tr")
    assert rejected and topics[Topic.ROOMS] in rejected[1] and rejected[2], rejected
    screenshot(browser, "rejected")

    # Endpoints: the failing endpoint's breaker, paused from the page.
    click_and_load(browser, browser.find_element(By.LINK_TEXT, "Endpoints"))
    breaker = f'#breakers tr[data-endpoint="{endpoint_label(failing_url)}"]'
    assert cells(browser, breaker), text(browser)
    browser.find_element(By.CSS_SELECTOR, f"{breaker} input[name=reason]").send_keys("CRM down")
    click_and_load(browser, browser.find_element(By.CSS_SELECTOR, f"{breaker} button.pause"))
    controls = read_topic(topics[Topic.ENDPOINT_CONTROLS]).wait_for(1, timeout_s=30)
    assert controls[0]["url"] == failing_url and controls[0]["paused"] is True
    assert controls[0]["reason"] == "ops: CRM down"
    wait_for_page(browser, f"{base}/endpoints",
                  lambda d: cells(d, breaker)[2:3] == ["paused"], 30,
                  "the worker never reported the endpoint paused")  # fmt: skip
    no_secret_in(browser)
    screenshot(browser, "endpoints")
    worker.wait_for_log("paused by an operator")
    print(f"screenshots: {overview_png.parent}")


def test_the_endpoints_page_shows_filters_and_templates_and_tests_an_endpoint(
    settings_factory: Callable[..., Settings],
    applied_topics: dict[Topic, str],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    settings = settings_factory(console_token=f"ops:{OPS_TOKEN}")
    added = omnihooks_cli(settings, "endpoints", "add", "notes", "--url", receiver.url("/ok/notes"),
                          "--filter", '.type == "LivechatSession"',
                          "--template", '{method: "PUT", body: {room: ._id}}')  # fmt: skip
    assert added.returncode == 0, added.stderr
    console = ConsoleProcess(settings, "console", tmp_path / "console.log", port=free_port())
    console.start()
    try:
        wait_until(lambda: _answers(console.url), 60, lambda: console.tail())
        page = httpx.get(f"{console.url}/endpoints", timeout=30).text
        assert ".type == &quot;LivechatSession&quot;" in page and "{method: &quot;PUT&quot;" in page
        bearer = {"Authorization": f"Bearer {OPS_TOKEN}"}
        dry = httpx.post(f"{console.url}/endpoints/test", headers=bearer, timeout=30,
                         data={"endpoint": "default/notes", "type": "close", "dry_run": "1"})  # fmt: skip
        assert dry.status_code == 200, dry.text
        assert f"PUT {receiver.url('/ok/notes')}" in dry.text and "dry-run: not sent" in dry.text
        assert receiver.at("/ok/notes") == []
        sent = httpx.post(f"{console.url}/endpoints/test", headers=bearer, timeout=30,
                          data={"endpoint": "default/notes", "type": "close"})  # fmt: skip
        assert sent.status_code == 200 and "answer: HTTP 200" in sent.text
        assert receiver.wait_for("/ok/notes", 1)[0].body == b'{"room":"sample-room"}'
        refused = httpx.post(f"{console.url}/endpoints/test", timeout=30,
                             data={"endpoint": "default/notes", "type": "close"})  # fmt: skip
        assert refused.status_code in (401, 403)
    finally:
        console.stop()


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/endpoints", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
