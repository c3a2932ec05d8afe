"""The status page in a real browser: Debian's headless Chromium, driven by Selenium through
Debian's chromedriver, against a real `gsmbridge run` on its simulated modem.

Needs the apt packages chromium and chromium-driver; without them the test is skipped and says so.
Screenshots (wide and phone-sized) are left in the system's temp directory for a person to look at.
"""

import os
import shutil
import tempfile

import pytest
import requests

from bridgeproc import BridgeProcess, wait_for
from httpsink import HttpSink

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
           "chromium-driver)")

SCREENSHOTS = os.path.join(tempfile.gettempdir(), "gsmbridge-status-page-%s.png")


@pytest.fixture
def bridge(tmp_path):
    sink = HttpSink()
    b = BridgeProcess(tmp_path, rapidsms_url=sink.url + "/backend/kannel-backend/")
    b.sink = sink
    b.start()
    yield b
    b.stop()
    sink.stop()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def screenshot(driver, name, width):
    """A full-page screenshot at this width."""
    driver.set_window_size(width, 900)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, height + 120)
    path = SCREENSHOTS % name
    driver.save_screenshot(path)
    return path


def test_status_page_in_a_browser(bridge, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    resp = bridge.send("+255700000042", "From the browser test")
    assert resp.status_code == 202, resp.text
    first = resp.json()["id"]
    wait_for(lambda: bridge.sent(), message="the SMS sent by the modem")
    bridge.inject("+255700000043", "Habari from the field")
    wait_for(lambda: bridge.sink.requests, message="the inbound SMS at RapidSMS")

    user, password = bridge.auth
    browser.get("http://%s:%s@127.0.0.1:%d/?refresh=2" % (user, password, bridge.http_port))
    assert "gsmbridge on" in browser.title

    modem = browser.find_element(By.CSS_SELECTOR, '[data-modem="modem"]')
    assert modem.get_attribute("data-state") == "up"
    assert modem.find_element(By.CSS_SELECTOR, ".pill").text == "up"
    assert "CSQ" in modem.text          # the simulator answers AT+CSQ
    row = WebDriverWait(browser, 20).until(lambda d: d.find_element(
        By.CSS_SELECTOR, 'tr[data-id="%s"][data-status="sent"]' % first))
    assert "+25570****042" in row.text and "out" in row.text
    inbound = WebDriverWait(browser, 20).until(lambda d: d.find_element(
        By.CSS_SELECTOR, 'tr[data-direction="in"][data-status="delivered"]'))
    assert "+25570****043" in inbound.text
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "+255700000042" not in page and "From the browser test" not in page
    assert "Traffic, last 24 hours" in page and "Last hour: 1 received, 1 sent" in page
    chart = browser.find_element(By.CSS_SELECTOR, "svg.chart")
    assert chart.size["width"] > 600 and chart.size["height"] > 50

    # the page refreshes itself in place (fetching itself with the same credentials)
    resp = bridge.send("+255700000044", "While the page is open")
    second = resp.json()["id"]
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(
        By.CSS_SELECTOR, 'tr[data-id="%s"]' % second))
    assert browser.find_element(By.ID, "offline").text == ""

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors      # e.g. a CSP violation, a failed fetch, a missing asset

    screenshot(browser, "wide", 1280)
    screenshot(browser, "phone", 375)
    # readable on a phone: nothing wider than the screen
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0


def test_status_page_says_when_the_bridge_stops_answering(bridge, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    user, password = bridge.auth
    browser.get("http://%s:%s@127.0.0.1:%d/?refresh=2" % (user, password, bridge.http_port))
    assert browser.find_element(By.CSS_SELECTOR, '[data-modem="modem"]').get_attribute(
        "data-state") == "up"
    assert bridge.terminate() == 0
    banner = WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "offline").text or None)
    assert banner.startswith("No answer from the bridge since")
    # the last figures stay on screen
    assert browser.find_element(By.CSS_SELECTOR, '[data-modem="modem"]').is_displayed()
    with pytest.raises(requests.ConnectionError):
        requests.get(bridge.api + "/health", timeout=2)
