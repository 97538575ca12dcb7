"""End to end: tokens made by Microsoft's device SDK (azure-iot-device 2.14.0) checked by a real
`registryd serve` through POST /registry/auth/device and the EMQX authenticator route, and a
broker's connection reports changing the registry.

The device SDK has its own dependency set, so tools/test.sh runs this suite in its own virtual
environment (shared/spec/sdk-wire-contract.md section 6). Tokens are made exactly as
`IoTHubDeviceClient.create_from_connection_string` makes them.
"""

import base64
import os
import subprocess
import sys
import tempfile
import urllib.parse

import pytest
import requests
from azure.iot.device.common.auth.sastoken import RenewableSasToken
from azure.iot.device.common.auth.signing_mechanism import SymmetricKeySigningMechanism
from azure.iot.device.iothub.abstract_clients import _form_sas_uri

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk-e2e"))
from registryd_helpers import BINARY, free_port, wait_until_serving  # noqa: E402


@pytest.fixture(scope="module")
def daemon():
    data = tempfile.mkdtemp(prefix="registryd-device-")
    port = free_port()
    log = open(os.path.join(data, "serve.log"), "w")
    proc = subprocess.Popen([BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    ca = wait_until_serving(proc, data, port)

    def token(policy):
        return subprocess.check_output([BINARY, "sas-token", "--data-dir", data, "--policy", policy]).decode().strip()

    session = requests.Session()
    session.verify = ca
    session.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would override verify
    yield {"url": f"https://localhost:{port}", "host": f"localhost:{port}", "owner": token("iothubowner"), "broker": token("device"), "http": session}
    proc.terminate()
    assert proc.wait(timeout=30) == 0
    verify = subprocess.run([BINARY, "audit", "verify", "--data-dir", data], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def create(d, path, body="{}"):
    r = d["http"].put(d["url"] + path + "?api-version=2021-04-12", data=body, headers={"Authorization": d["owner"], "Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    return r.json()


def sdk_token(d, device_id, key, module_id=None, ttl=3600):
    uri = _form_sas_uri(hostname=d["host"], device_id=device_id, module_id=module_id)
    return str(RenewableSasToken(uri, SymmetricKeySigningMechanism(key), key_name=None, ttl=ttl))


def check(d, device_id, token, module_id=None):
    body = {"deviceId": device_id, "token": token}
    if module_id:
        body["moduleId"] = module_id
    r = d["http"].post(d["url"] + "/registry/auth/device", json=body, headers={"Authorization": d["broker"]})
    assert r.status_code == 200, r.text
    answer = r.json()
    return answer["result"] if answer["result"] == "allow" else answer["reason"]


def test_device_and_module_tokens_from_the_device_sdk(daemon):
    d = daemon
    dev = create(d, "/devices/sdk-dev1")
    key = dev["authentication"]["symmetricKey"]["primaryKey"]
    secondary = dev["authentication"]["symmetricKey"]["secondaryKey"]
    mod = create(d, "/devices/sdk-dev1/modules/telemetry")
    module_key = mod["authentication"]["symmetricKey"]["primaryKey"]
    create(d, "/devices/sdk-dev2")

    token = sdk_token(d, "sdk-dev1", key)
    assert "%2F" in token.split("sr=")[1].split("&")[0], "the device SDK encodes the resource"
    assert check(d, "sdk-dev1", token) == "allow"
    assert check(d, "sdk-dev1", sdk_token(d, "sdk-dev1", secondary)) == "allow"
    assert check(d, "sdk-dev1", sdk_token(d, "sdk-dev1", module_key, module_id="telemetry"), module_id="telemetry") == "allow"

    # Tampered: a signature byte changed, or the expiry pushed out under the old signature.
    fields = dict(p.split("=", 1) for p in token[len("SharedAccessSignature "):].split("&"))
    sig = urllib.parse.unquote(fields["sig"])
    raw = bytearray(base64.b64decode(sig))
    raw[0] ^= 1
    bad_sig = token.replace(fields["sig"], urllib.parse.quote(base64.b64encode(bytes(raw)).decode(), safe=""))
    assert check(d, "sdk-dev1", bad_sig) == "badSignature"
    assert check(d, "sdk-dev1", token.replace("se=" + fields["se"], "se=" + str(int(fields["se"]) + 3600))) == "badSignature"
    # Expired, wrong device, wrong key, a module token presented for the device.
    assert check(d, "sdk-dev1", sdk_token(d, "sdk-dev1", key, ttl=-60)) == "expired"
    assert check(d, "sdk-dev2", token) == "wrongScope"
    assert check(d, "sdk-dev1", sdk_token(d, "sdk-dev1", base64.b64encode(os.urandom(32)).decode())) == "badSignature"
    assert check(d, "sdk-dev1", sdk_token(d, "sdk-dev1", module_key, module_id="telemetry")) == "wrongScope"

    # Disabled: refused on the very next check, the module with it.
    etag = d["http"].get(d["url"] + "/devices/sdk-dev1", headers={"Authorization": d["owner"]}).json()["etag"]
    r = d["http"].put(d["url"] + "/devices/sdk-dev1", json={"deviceId": "sdk-dev1", "status": "disabled"}, headers={"Authorization": d["owner"], "If-Match": f'"{etag}"'})
    assert r.status_code == 200, r.text
    assert check(d, "sdk-dev1", token) == "disabled"
    assert check(d, "sdk-dev1", sdk_token(d, "sdk-dev1", module_key, module_id="telemetry"), module_id="telemetry") == "disabled"

    # Deleted and re-created (new keys): the old token is refused, a fresh one from the SDK works.
    assert d["http"].delete(d["url"] + "/devices/sdk-dev1", headers={"Authorization": d["owner"], "If-Match": "*"}).status_code == 204
    assert check(d, "sdk-dev1", token) == "unknownIdentity"
    again = create(d, "/devices/sdk-dev1")
    assert check(d, "sdk-dev1", token) == "badSignature"
    assert check(d, "sdk-dev1", sdk_token(d, "sdk-dev1", again["authentication"]["symmetricKey"]["primaryKey"])) == "allow"


def mqtt_username(host, client_id):
    # The device SDK's MQTT user name (azure/iot/device/iothub/pipeline/pipeline_stages_iothub_mqtt.py).
    query = urllib.parse.urlencode([("api-version", "2019-10-01"), ("DeviceClientType", "azure-iot-device-iothub-py/2.14.0")], quote_via=urllib.parse.quote)
    return f"{host}/{client_id}/?{query}"


def test_emqx_authenticator_and_connection_reports(daemon):
    d = daemon
    dev = create(d, "/devices/mqtt-dev")
    key = dev["authentication"]["symmetricKey"]["primaryKey"]
    token = sdk_token(d, "mqtt-dev", key)

    def emqx(username, password, clientid):
        r = d["http"].post(d["url"] + "/registry/auth/emqx", json={"username": username, "password": password, "clientid": clientid}, headers={"Authorization": d["broker"]})
        assert r.status_code == 200, r.text
        return r.json()

    allowed = emqx(mqtt_username(d["host"], "mqtt-dev"), token, "mqtt-dev")
    assert allowed["result"] == "allow" and allowed["is_superuser"] is False
    assert allowed["expire_at"] == int(dict(p.split("=", 1) for p in token.split(" ", 1)[1].split("&"))["se"])
    assert emqx(mqtt_username(d["host"], "mqtt-dev"), token, "someone-else")["result"] == "deny"
    assert emqx(mqtt_username(d["host"], "mqtt-dev"), sdk_token(d, "mqtt-dev", key, ttl=-1), "mqtt-dev")["reason"] == "expired"

    # The broker reports the connection (EMQX rule-engine event shape); the etag stays.
    r = d["http"].post(d["url"] + "/registry/connections", json={"event": "client.connected", "clientid": "mqtt-dev"}, headers={"Authorization": d["broker"]})
    assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
    now = d["http"].get(d["url"] + "/devices/mqtt-dev", headers={"Authorization": d["owner"]}).json()
    assert now["connectionState"] == "Connected"
    assert now["etag"] == dev["etag"]
    assert d["http"].get(d["url"] + "/statistics/service", headers={"Authorization": d["owner"]}).json()["connectedDeviceCount"] >= 1
