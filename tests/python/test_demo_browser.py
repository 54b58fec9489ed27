"""The demo page in a real browser: headless Debian chromium driven by selenium.

Each panel is exercised as a user would; the page must log no console error,
and a screenshot is written to build/demo.png for a human to look at."""
import os
import shutil
import tempfile

import pytest

from demo_process import ROOT, demo_process
from mqtt_peers import aedes_ws  # noqa: F401  (fixture)

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service as ChromeService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
if CHROMIUM is None or CHROMEDRIVER is None:  # pragma: no cover - deps.sh installs both
    pytest.skip("chromium and chromium-driver are not installed (scripts/deps.sh test)",
                allow_module_level=True)

SCREENSHOT = os.path.join(ROOT, "build", "demo.png")


@pytest.fixture(scope="module")
def demo():
    with demo_process() as d:
        yield d


def new_browser(profile):
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--window-size=1280,1000",
                "--user-data-dir=" + profile):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = ChromeService(executable_path=CHROMEDRIVER)
    return webdriver.Chrome(service=service, options=opts)


@pytest.fixture(scope="module")
def browser(demo):
    with tempfile.TemporaryDirectory() as profile:
        driver = new_browser(profile)
        try:
            driver.get("http://127.0.0.1:%d/" % demo[1])
            yield driver
        finally:
            driver.quit()


def text_of(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def wait_for(driver, what, timeout=15):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: what(d))


def test_websocket_round_trip(browser):
    wait_for(browser, lambda d: text_of(d, "ws-state") == "open")
    assert "permessage-deflate" in text_of(browser, "ws-ext")
    box = browser.find_element(By.ID, "ws-input")
    box.clear()
    box.send_keys("round trip from chromium")
    browser.find_element(By.CSS_SELECTOR, "#ws-form button").click()
    wait_for(browser, lambda d: "you (echo)round trip from chromium" in text_of(d, "ws-log"))


def test_sse_ticks_and_stats_arrive(browser):
    wait_for(browser, lambda d: int(text_of(d, "sse-ticks")) >= 2)
    wait_for(browser, lambda d: text_of(d, "stats-state") == "live")
    assert int(text_of(browser, "st-conns")) >= 2  # at least the WebSocket and the SSE stream


def test_json_form_returns_its_answer(browser):
    browser.find_element(By.CSS_SELECTOR, "#api-form button").click()
    wait_for(browser, lambda d: "HTTP 200" in text_of(d, "api-out"))
    assert '"name": "Ada"' in text_of(browser, "api-out").split("HTTP 200", 1)[1]


def test_upload_completes(browser, tmp_path):
    data = os.urandom(2 * 1024 * 1024)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    browser.find_element(By.ID, "upload-file").send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "#upload-form button").click()
    wait_for(browser, lambda d: "HTTP 200" in text_of(d, "upload-out"))
    import hashlib
    out = text_of(browser, "upload-out")
    assert '"name": "upload.bin"' in out and hashlib.sha256(data).hexdigest() in out
    assert browser.find_element(By.ID, "upload-progress").get_attribute("value") == "100"


def test_static_range_and_etag(browser):
    browser.find_element(By.ID, "static-range").click()
    wait_for(browser, lambda d: "HTTP 206" in text_of(d, "static-out"))
    assert "content-range: bytes 0-63/" in text_of(browser, "static-out")
    browser.find_element(By.ID, "static-etag").click()
    wait_for(browser, lambda d: "HTTP 304" in text_of(d, "static-out"))


def test_mqtt_panel_tells_its_state(browser):
    import cymongoose
    if hasattr(cymongoose.Manager, "mqtt_broker"):
        wait_for(browser, lambda d: text_of(d, "mqtt-state") == "connected")
        browser.find_element(By.ID, "mqtt-send").click()
        wait_for(browser, lambda d: "hello over MQTT" in text_of(d, "mqtt-log"))
    else:
        wait_for(browser, lambda d: text_of(d, "mqtt-state") == "not built")


def test_zz_no_console_errors_and_a_screenshot(browser):
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    os.makedirs(os.path.dirname(SCREENSHOT), exist_ok=True)
    # The whole page in one picture: the viewport grows to the document's height.
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1280, "height": height, "deviceScaleFactor": 1, "mobile": False})
    assert browser.save_screenshot(SCREENSHOT)


# ------------------------------------------------- the MQTT client of the page
def test_mqtt_panel_publishes_and_receives_through_a_broker(aedes_ws):  # noqa: F811
    """The page's hand-written MQTT 3.1.1 client against aedes (npm), with
    paho as a second client: what the panel does once our broker exists."""
    paho = pytest.importorskip("paho.mqtt.client")
    with demo_process("--mqtt-url", aedes_ws.ws_url) as d, tempfile.TemporaryDirectory() as profile:
        driver = new_browser(profile)
        try:
            driver.get("http://127.0.0.1:%d/" % d[1])
            wait_for(driver, lambda dr: text_of(dr, "mqtt-state") == "connected")
            # The page's own message comes back through its subscription to demo/#.
            driver.find_element(By.ID, "mqtt-send").click()
            wait_for(driver, lambda dr: "demo/chathello over MQTT" in text_of(dr, "mqtt-log"))
            # A message from another client (paho over WebSocket) reaches the page.
            other = paho.Client(client_id="from-paho", transport="websockets")
            other.ws_set_options(path="/mqtt")
            other.connect("127.0.0.1", aedes_ws.port)
            other.loop_start()
            try:
                other.publish("demo/paho", "hello from paho", qos=1).wait_for_publish(10)
            finally:
                other.loop_stop()
                other.disconnect()
            wait_for(driver, lambda dr: "demo/pahohello from paho" in text_of(dr, "mqtt-log"))
            assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
        finally:
            driver.quit()
