"""The console page (GET /api/ui) in a real browser: Debian's chromium, headless, driven by
selenium through chromedriver, against the local runner on the real database with the offline AI
provider. A listener is created, likes an item and gets a changed next page, and the dashboard's
counts grow. Screenshots go to tests/artifacts/; with UPDATE_DOCS_SCREENSHOT=1 the last one also
becomes docs/ui.png, the README's picture.

Skipped, saying why, where chromium or chromedriver is missing: `make test` installs them on
Debian/Ubuntu (apt-get install chromium chromium-driver).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ROOT, SAMPLE_DIR, Api, sample_service, user_in, wait_for_model

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="the browser test needs chromium and chromedriver (Debian/Ubuntu: apt-get install chromium "
        "chromium-driver; `make test` does it when it runs as root or with sudo)",
    ),
]
ARTIFACTS = ROOT / "tests" / "artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "ui.png"
WAIT_SECONDS = 20


@pytest.fixture(scope="module")
def console_api(create_database, tmp_path_factory) -> Iterator[Api]:
    """A runner of its own with the sample catalog and a week of listeners in both variants."""
    with sample_service(create_database("ui_browser"), tmp_path_factory.mktemp("logs") / "ui.log") as api:
        listen_for_a_week(api)
        yield api


def listen_for_a_week(api: Api) -> None:
    """Twelve listeners with the sample users' histories, one or two a day over the past week:
    each is served a page (through the API) and answers its first two to four items, liking those
    of their topics and skipping the others; their rows are then dated back to their day, so the
    dashboard has days to draw."""
    users = json.loads((SAMPLE_DIR / "users.json").read_text())
    for n in range(12):
        user = users[n % len(users)]
        topics = {
            listened.removeprefix("sample-").rsplit("-", 1)[0] for listened in user["listened_external_ids"]
        }
        user_id = user_in("history_only" if n % 3 == 0 else "loop")
        body = {"user_id": user_id, "listening_history": user["listening_history"]}
        assert api.post("/api/update_user_history", body).status_code == 200
        page = api.get("/api/recommend_podcasts", params={"user_id": user_id}).json()["recommendations"]
        for item in page[: 2 + n % 3]:
            ids = {"podcast_id": item["podcast_id"], "suggestion_id": item["suggestion_id"]}
            event = "like" if item["category"] in topics else "skip"
            assert api.post("/api/feedback", {"user_id": user_id, **ids, "event": event}).status_code == 201
        for table, column in (("suggested_podcasts", "suggested_at"), ("feedback_events", "occurred_at")):
            api.query(
                f"UPDATE {table} SET {column} = {column} - %s * interval '1 day' WHERE user_id = %s",
                (6 - n // 2, user_id),
            )


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)  # --no-sandbox: the tests may run as root
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def text(driver: webdriver.Chrome, selector: str) -> str:
    return driver.find_element(By.CSS_SELECTOR, selector).text


def wait(driver: webdriver.Chrome, condition, what: str):
    return WebDriverWait(driver, WAIT_SECONDS).until(condition, message=f"waited for {what}")


def page_ids(driver: webdriver.Chrome) -> list[str]:
    return [
        item.get_attribute("data-podcast-id") for item in driver.find_elements(By.CSS_SELECTOR, "#page li")
    ]


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    """The whole page, not only the window (Chrome DevTools' capture beyond the viewport)."""
    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    image = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_bytes(base64.b64decode(image["data"]))


def test_a_listener_likes_an_item_and_the_page_and_dashboard_follow(
    console_api: Api, browser: webdriver.Chrome
):
    wait_for_model(console_api)  # so the dashboard can say what the models learn from
    browser.get(f"{console_api.base_url}/api/ui")
    wait(browser, lambda d: text(d, "#total-suggestions").isdigit(), "the dashboard")
    suggestions, events = int(text(browser, "#total-suggestions")), int(text(browser, "#total-events"))
    assert suggestions > 0 and events > 0
    assert "loop" in text(browser, "#ab") and "95 % interval" in text(browser, "#ab")
    assert text(browser, "#signal").startswith("Models learn from judgement (")
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-rates svg path")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#topics .topic"), "a trending topic")

    browser.find_element(By.ID, "user-id").send_keys(f"browser-{datetime.now(UTC):%H%M%S%f}")
    browser.find_element(By.ID, "user-name").send_keys("Ada")
    browser.find_element(By.ID, "history").send_keys("True crime, cold cases and forensic evidence.")
    browser.find_element(By.ID, "save-listener").click()
    wait(browser, lambda d: len(page_ids(d)) == 5, "the listener's first page")
    first = page_ids(browser)
    assert "strategy" in text(browser, "#page li .facts") and "similarity" in text(browser, "#page li .facts")
    assert text(browser, "#variant").startswith("variant ")
    screenshot(browser, "1-first-page.png")

    # Two items of one page, then the next page: the page stays while the listener acts on it.
    browser.find_element(By.CSS_SELECTOR, "#page li:nth-child(1) button[data-event=like]").click()
    wait(browser, lambda d: "Recorded like" in text(d, "#message"), "the like to be recorded")
    browser.find_element(By.CSS_SELECTOR, "#page li:nth-child(2) button[data-event=skip]").click()
    wait(browser, lambda d: ", skip on" in text(d, "#message"), "the skip to be recorded")
    assert page_ids(browser) == first
    assert [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#page li .done")][:2] == [
        "✓ like",
        "✓ skip",
    ]
    wait(browser, lambda d: int(text(d, "#total-events")) == events + 2, "the dashboard's events to grow")
    browser.find_element(By.ID, "next-page").click()
    wait(browser, lambda d: "after like and skip" in text(d, "#page-note"), "the next page")
    second = page_ids(browser)
    assert len(second) == 5 and set(second) != set(first)
    assert text(browser, "#prepared") in ("prepared ahead", "computed for this request")
    assert "reason:" in text(browser, "#page li .facts")
    assert "because of what they did" in text(browser, "#page-note")
    wait(browser, lambda d: int(text(d, "#total-suggestions")) == suggestions + 10, "the second page counted")

    browser.find_element(By.ID, "q").send_keys("cold case solved by DNA")
    browser.find_element(By.CSS_SELECTOR, "#search-form button").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results li .facts"), "search results")
    browser.execute_script("window.scrollTo(0, 0)")
    screenshot(browser, "2-after-like.png")  # the README's picture: no test data in it

    browser.find_element(By.ID, "add-title").send_keys("<b>Tags</b> in a title: the Zodiac letters")
    browser.find_element(By.ID, "add-transcript").send_keys("Codebreakers and detectives on the cipher.")
    browser.find_element(By.CSS_SELECTOR, "#add-form button").click()
    wait(browser, lambda d: "is ready" in text(d, "#add-status"), "the new episode to be ready")
    assert "<b>Tags</b>" in text(browser, "#add-status")  # shown as text, never as markup
    assert not browser.find_elements(By.CSS_SELECTOR, "#add-status b")

    log = browser.get_log("browser")  # script errors, CSP refusals, failed requests (no favicon: fine)
    errors = [e for e in log if e["level"] == "SEVERE" and "/favicon.ico" not in e["message"]]
    assert not errors, errors
    # An unknown listener: the error, and no page of the listener shown before.
    user_box = browser.find_element(By.ID, "user-id")
    user_box.clear()
    user_box.send_keys("nobody-has-this-id")
    browser.find_element(By.ID, "show-page").click()
    wait(browser, lambda d: "user_not_found" in text(d, "#message"), "the error")
    assert page_ids(browser) == [] and text(browser, "#variant") == ""

    # A phone's width: nothing scrolls sideways.
    browser.set_window_size(420, 900)
    width, inner = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, (width, inner)
    browser.set_window_size(1400, 1000)

    if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS / "2-after-like.png", DOCS_SCREENSHOT)
