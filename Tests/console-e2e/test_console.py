"""End to end (issue 21): the operator console in a real browser (Debian's chromium, headless,
through chromedriver and Selenium) against a real `registryd serve`: paste a connection string,
create a device, see it listed, disable it, see its history and the live stream, see a route's
parked messages after its endpoint fails, verify the audit chain, and check that a registryRead
connection string cannot create. Screenshots of each view are saved (REGISTRYD_ARTIFACTS, default
.build/console-screenshots).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk-e2e"))
from registryd_helpers import BINARY, ROOT, free_port, wait_until_serving  # noqa: E402

ARTIFACTS = os.environ.get("REGISTRYD_ARTIFACTS", os.path.join(ROOT, ".build", "console-screenshots"))


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def daemon():
    data = tempfile.mkdtemp(prefix="registryd-console-")
    config = os.path.join(data, "registryd.json")
    with open(config, "w") as f:
        json.dump({
            # A webhook nobody listens on: its messages are parked once the retry window passes.
            "endpoints": [{"name": "nowhere", "type": "webhook", "url": f"http://127.0.0.1:{closed_port()}/events",
                           "secret": "whsec_" + "A" * 43 + "=", "timeoutMs": 500}],
            "routes": [{"name": "lifecycle", "source": "DeviceLifecycleEvents", "condition": "true", "endpointNames": ["nowhere"]}],
            "delivery": {"initialBackoffMs": 20, "maxBackoffMs": 100, "retryWindowSeconds": 1},
        }, f)
    port = free_port()
    log = open(os.path.join(data, "serve.log"), "w")
    proc = subprocess.Popen([BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--config", config],
                            stdout=log, stderr=subprocess.STDOUT)
    ca = wait_until_serving(proc, data, port)

    def tool(*args):
        return subprocess.check_output([BINARY, *args, "--data-dir", data]).decode().strip()

    yield {"url": f"https://localhost:{port}", "ca": ca, "owner_cs": tool("connection-string"),
           "read_cs": tool("connection-string", "--policy", "registryRead"), "owner": tool("sas-token")}
    proc.terminate()
    assert proc.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def browser():
    os.makedirs(ARTIFACTS, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900",
                 # The daemon's certificate is from its own local CA, which this throwaway profile does not trust.
                 "--ignore-certificate-errors"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait(driver, condition, timeout=20):
    # The page re-renders its tables: an element found a moment ago may be gone; look again.
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=[NoSuchElementException, StaleElementReferenceException]).until(condition)


def text_of(driver, element_id):
    return driver.find_element(By.ID, element_id).text


def shot(driver, name):
    driver.save_screenshot(os.path.join(ARTIFACTS, f"{name}.png"))


def connect(driver, daemon, connection_string):
    driver.get(daemon["url"] + "/console/")
    box = wait(driver, EC.visibility_of_element_located((By.ID, "cs")))
    box.clear()
    box.send_keys(connection_string)
    driver.find_element(By.CSS_SELECTOR, "#connect-form button[type=submit]").click()
    wait(driver, EC.visibility_of_element_located((By.ID, "devices")))


def api(daemon, method, path, body=None):
    r = requests.request(method, f"{daemon['url']}{path}?api-version=2021-04-12", json=body,
                         headers={"Authorization": daemon["owner"]}, verify=daemon["ca"], timeout=30)
    r.raise_for_status()
    return r.json() if r.text else None


def row(driver, device_id):
    return driver.find_element(By.CSS_SELECTOR, f"#device-table tr[data-device='{device_id}']")


def test_an_operator_manages_devices_in_the_console(daemon, browser):
    d = browser
    d.get(daemon["url"] + "/console/")
    shot(d, "0-connect")
    connect(d, daemon, daemon["owner_cs"])
    # The key is not left in the page.
    assert d.find_element(By.ID, "cs").get_attribute("value") == ""

    # Create: the new device is listed.
    field = d.find_element(By.ID, "new-id")
    field.send_keys("console-1")
    d.find_element(By.CSS_SELECTOR, "#create-form button[type=submit]").click()
    wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#device-table tr[data-device='console-1']"))
    assert "enabled" in row(d, "console-1").text
    shot(d, "1-devices")

    # Disable with a reason: the page reads the device, asks why, and writes with that read's
    # If-Match. A change made elsewhere while the operator types shows as a conflict.
    row(d, "console-1").find_element(By.XPATH, ".//button[text()='Disable']").click()
    alert = wait(d, EC.alert_is_present())
    elsewhere = api(daemon, "GET", "/devices/console-1")
    elsewhere["statusReason"] = "changed elsewhere"
    requests.put(f"{daemon['url']}/devices/console-1?api-version=2021-04-12", json=elsewhere, verify=daemon["ca"],
                 headers={"Authorization": daemon["owner"], "If-Match": elsewhere["etag"]}).raise_for_status()
    alert.send_keys("stolen")
    alert.accept()
    error = wait(d, EC.visibility_of_element_located((By.ID, "error")))
    assert error.text.startswith("412") and "Conflict" in error.text
    assert api(daemon, "GET", "/devices/console-1")["status"] == "enabled", "the conflict overwrote nothing"
    shot(d, "1-conflict")
    # Again, with nothing in between: disabled.
    row(d, "console-1").find_element(By.XPATH, ".//button[text()='Disable']").click()
    alert = wait(d, EC.alert_is_present())
    alert.send_keys("stolen")
    alert.accept()
    wait(d, lambda drv: "disabled (stolen)" in row(drv, "console-1").text)
    assert api(daemon, "GET", "/devices/console-1")["status"] == "disabled"

    # The device: identity with keys hidden, its history from the log (create and update).
    row(d, "console-1").find_element(By.XPATH, ".//button[text()='console-1']").click()
    wait(d, lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#history tbody tr")) >= 3)
    assert "hidden" in text_of(d, "identity")
    d.find_element(By.ID, "show-keys").click()
    keys = api(daemon, "GET", "/devices/console-1")["authentication"]["symmetricKey"]
    wait(d, lambda drv: keys["primaryKey"] in text_of(drv, "identity"))
    history = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#history tbody tr")]
    # Created, changed elsewhere, disabled: each with its seq and its actor.
    assert [line.split()[0] for line in history] == [str(e["seq"]) for e in requests.get(
        f"{daemon['url']}/registry/devices/console-1/history?api-version=2021-04-12",
        headers={"Authorization": daemon["owner"]}, verify=daemon["ca"]).json()]
    assert any("status" in line for line in history)
    # The state at a time, folded from the history: before the create it did not exist; now it
    # is disabled with its reason.
    def state_at(when):
        d.execute_script("document.getElementById('at').value = arguments[0]", when)
        d.find_element(By.CSS_SELECTOR, "#at-form button[type=submit]").click()
        time.sleep(0.2)
        return text_of(d, "state-at")
    assert "did not exist" in state_at("2000-01-01T00:00:00")
    later = d.execute_script("const t = new Date(Date.now() + 60000); t.setMinutes(t.getMinutes() - t.getTimezoneOffset());"
                             " return t.toISOString().slice(0, 19)")
    state = state_at(later)
    assert '"status": "disabled"' in state and '"statusReason": "stolen"' in state, state
    shot(d, "2-device")

    # Live: a change made elsewhere appears as it happens; paused, it is held.
    d.find_element(By.CSS_SELECTOR, "nav button[data-view=live]").click()
    time.sleep(0.5)
    made = api(daemon, "PUT", "/devices/console-2", {"deviceId": "console-2"})
    made["statusReason"] = "updated elsewhere"
    requests.put(f"{daemon['url']}/devices/console-2?api-version=2021-04-12", json=made, verify=daemon["ca"],
                 headers={"Authorization": daemon["owner"], "If-Match": made["etag"]}).raise_for_status()
    wait(d, lambda drv: "createDeviceIdentity console-2" in text_of(drv, "events")
         and "updateDeviceIdentity console-2" in text_of(drv, "events"))
    # Connection changes too (a broker's report).
    requests.post(f"{daemon['url']}/registry/connections?api-version=2021-04-12", json={"deviceId": "console-2", "state": "connected"},
                  headers={"Authorization": daemon["owner"]}, verify=daemon["ca"]).raise_for_status()
    wait(d, lambda drv: "deviceConnected console-2" in text_of(drv, "events"))
    d.find_element(By.ID, "pause").click()
    api(daemon, "PUT", "/devices/console-3", {"deviceId": "console-3"})
    wait(d, lambda drv: "held" in text_of(drv, "held"))
    assert "console-3" not in text_of(d, "events")
    d.find_element(By.ID, "pause").click()
    wait(d, lambda drv: "console-3" in text_of(drv, "events"))
    shot(d, "3-live")

    # Routes: the failing endpoint's messages end up parked, and the page shows the count.
    d.find_element(By.CSS_SELECTOR, "nav button[data-view=routes]").click()
    def parked(drv):
        cells = drv.find_elements(By.CSS_SELECTOR, "#route-table tr[data-route='lifecycle'] td.parked")
        return cells and cells[0].text.isdigit() and int(cells[0].text) > 0
    wait(d, parked, timeout=40)
    shot(d, "4-routes")

    # Overview: counts, the chain head, and a verification run from the page.
    d.find_element(By.CSS_SELECTOR, "nav button[data-view=overview]").click()
    wait(d, lambda drv: "Total" in text_of(drv, "counts") and "3" in text_of(drv, "counts"))
    wait(d, lambda drv: "Head seq" in text_of(drv, "head"))
    d.find_element(By.ID, "verify").click()
    wait(d, lambda drv: text_of(drv, "verify-result").startswith("clean"), timeout=60)
    shot(d, "5-overview")

    # Delete from the list (If-Match with the etag just read).
    d.find_element(By.CSS_SELECTOR, "nav button[data-view=devices]").click()
    wait(d, lambda drv: drv.find_elements(By.CSS_SELECTOR, "#device-table tr[data-device='console-2']"))
    row(d, "console-2").find_element(By.XPATH, ".//button[text()='Delete']").click()
    wait(d, EC.alert_is_present()).accept()
    wait(d, lambda drv: not drv.find_elements(By.CSS_SELECTOR, "#device-table tr[data-device='console-2']"))
    assert requests.get(f"{daemon['url']}/devices/console-2?api-version=2021-04-12", headers={"Authorization": daemon["owner"]},
                        verify=daemon["ca"]).status_code == 404


def test_a_read_only_connection_string_cannot_create(daemon, browser):
    d = browser
    connect(d, daemon, daemon["read_cs"])
    assert "registryRead" in text_of(d, "who")
    d.find_element(By.ID, "new-id").send_keys("not-allowed")
    d.find_element(By.CSS_SELECTOR, "#create-form button[type=submit]").click()
    error = wait(d, EC.visibility_of_element_located((By.ID, "error")))
    assert error.text.startswith("401")
    assert "IotHubUnauthorizedAccess" in error.text
    shot(d, "6-read-only-refused")
    assert requests.get(f"{daemon['url']}/devices/not-allowed?api-version=2021-04-12", headers={"Authorization": daemon["owner"]},
                        verify=daemon["ca"]).status_code == 404


def test_the_console_works_from_the_keyboard_and_every_control_is_labelled(daemon, browser):
    from selenium.webdriver.common.keys import Keys

    d = browser
    d.get(daemon["url"] + "/console/")
    unlabelled = d.execute_script("""
        const missing = [];
        for (const c of document.querySelectorAll('input, textarea, select')) {
          if (!c.id || !document.querySelector(`label[for="${c.id}"]`)) missing.push(c.outerHTML);
        }
        for (const b of document.querySelectorAll('button')) if (!b.textContent.trim()) missing.push(b.outerHTML);
        return missing;""")
    assert unlabelled == []
    # Keyboard only: type the connection string, Tab to Connect, Enter.
    box = wait(d, EC.visibility_of_element_located((By.ID, "cs")))
    box.click()
    box.send_keys(daemon["owner_cs"])
    box.send_keys(Keys.TAB)
    assert d.switch_to.active_element.text == "Connect"
    d.switch_to.active_element.send_keys(Keys.ENTER)
    wait(d, EC.visibility_of_element_located((By.ID, "devices")))
    # The view's heading takes the focus (a screen reader announces where the operator is).
    assert d.switch_to.active_element.get_attribute("id") == "devices-title"


def test_the_device_list_is_paged(daemon, browser):
    d = browser
    batch = [{"id": f"page-{i:03d}", "importMode": "create"} for i in range(60)]
    r = requests.post(f"{daemon['url']}/devices?api-version=2021-04-12", json=batch, headers={"Authorization": daemon["owner"]},
                      verify=daemon["ca"], timeout=30)
    assert r.status_code == 200, r.text
    connect(d, daemon, daemon["owner_cs"])
    wait(d, lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#device-table tbody tr")) == 50)
    more = d.find_element(By.ID, "more")
    assert more.is_displayed()
    more.click()
    total = len(api(daemon, "POST", "/devices/query", {"query": "SELECT * FROM devices"}))
    wait(d, lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#device-table tbody tr")) == total)
    assert not d.find_element(By.ID, "more").is_displayed()
    # A search narrows the list (the query language's WHERE clause).
    search = d.find_element(By.ID, "search")
    search.send_keys("status = 'disabled'")
    d.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    wait(d, lambda drv: [r.get_attribute("data-device") for r in drv.find_elements(By.CSS_SELECTOR, "#device-table tbody tr")] == ["console-1"])
    shot(d, "7-search")
