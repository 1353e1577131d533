"""The portal and the SLA report page in a real browser: headless Chromium driven by
Selenium through Debian's chromium-driver. A screenshot of each page is kept under
var/screenshots/ (CI keeps var/ as its artefacts)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningGateway, make_mail
from tests.gateway.http.helpers import ADMIN_TOKEN, admin
from tests.gateway.http.portal_helpers import mails_to, portal_path, start_portal
from tests.gateway.outbox.test_outbox import submit

SCREENSHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium; its driver is Debian's, so nothing is downloaded."""
    driver_path = shutil.which("chromedriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if driver_path is None or chromium is None:
        if os.environ.get("CI"):
            raise AssertionError("chromium and chromium-driver are not installed (.ci/run "
                                 "installs them)")
        pytest.skip("apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,900", "--lang=ru"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver: webdriver.Chrome, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def wait_for(driver: webdriver.Chrome, css: str) -> None:
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))


def test_portal_and_report_in_chromium(make_gateway, tmp_path: Path,
                                       browser: webdriver.Chrome) -> None:
    """Sign in by the link from the outgoing maildir, submit a request with a file, see it
    registered; open the SLA report page and read its headline and chart."""
    running: RunningGateway = start_portal(make_gateway, tmp_path)
    base = running.http_url
    submit(running, make_mail("Calls drop", sender="ivan@acme.example",
                              body="Every call drops after ten seconds for all our users."))
    running.settle()
    browser.get(f"{base}/portal/")
    browser.find_element(By.ID, "email").send_keys("ivan@acme.example")
    browser.find_element(By.ID, "send-link").click()
    wait_for(browser, "#sent")
    shot(browser, "portal-sign-in")
    running.settle()
    browser.get(base + portal_path(mails_to(running, "ivan@acme.example")[-1]))
    wait_for(browser, "#requests")
    assert "SUP-000001" in browser.find_element(By.ID, "requests").text
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ru"
    shot(browser, "portal-requests")

    browser.get(f"{base}/portal/new")
    wait_for(browser, "#subject")
    browser.find_element(By.ID, "subject").send_keys("Экспорт не работает")
    browser.find_element(By.ID, "description").send_keys(
        "Ночной экспорт падает у всех пользователей с понедельника.")
    attachment = tmp_path / "export.log"
    attachment.write_text("export failed: disk full\n", encoding="utf-8")
    browser.find_element(By.ID, "files").send_keys(str(attachment))
    shot(browser, "portal-new-request")
    browser.find_element(By.ID, "submit").click()
    wait_for(browser, "#submitted")
    running.settle()
    browser.refresh()
    wait_for(browser, "#requests")
    assert "Экспорт не работает" in browser.find_element(By.ID, "requests").text
    browser.find_element(By.LINK_TEXT, "SUP-000002").click()
    wait_for(browser, "#facts")
    assert "export.log" in browser.find_element(By.TAG_NAME, "main").text
    shot(browser, "portal-request")

    # The first request resolved in time: the report's headline has something to say.
    resolved = httpx.post(f"{base}/api/v1/tickets/SUP-000001/events",
                          json={"type": "resolved"}, headers=admin())
    assert resolved.status_code == 200, resolved.text
    # The report page is behind the bearer token: the browser sends it on every request.
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                            {"headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"}})
    browser.get(f"{base}/api/v1/reports/sla?from=2026-11-01&to=2026-11-30&format=html")
    wait_for(browser, "#headline")
    headline = browser.find_element(By.ID, "headline").text
    assert headline == ("100.00% of requests within SLA (1 of 1 decided; 2 received), "
                        "target 90%: met")
    chart = browser.find_element(By.ID, "daily-chart")
    assert chart.get_attribute("data-days") == "30" and chart.size["width"] > 500
    ticks = chart.find_elements(By.CSS_SELECTOR, "line.tick")
    assert len(ticks) == 30
    shot(browser, "sla-report")
