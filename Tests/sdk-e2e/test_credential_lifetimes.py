"""End to end: credential lifetimes (issue 22, item 2) on a `registryd serve` with a route on
the CredentialExpiryEvents source to a file endpoint. Windows are set over HTTPS (the SDK has no
field for them); Microsoft's SDK then updates the device as it always does and the windows
survive; the broker's device-authentication route enforces them; the expiring listing and the
notice delivered to the route report them."""

import datetime
import json
import os
import subprocess
import tempfile

import requests
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.sastoken import SasToken
from registryd_helpers import BINARY, eventually, free_port, wait_until_serving
from test_sdk_registry import KEY_A, KEY_B


def iso(delta):
    return (datetime.datetime.now(datetime.timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def same_time(a, b):
    """Whole seconds compared (registryd writes Azure's seven fraction digits)."""
    return a[:19] == b[:19] and a.endswith("Z") and b.endswith("Z")


def test_windows_survive_sdk_updates_are_enforced_listed_and_announced():
    data = tempfile.mkdtemp(prefix="registryd-credentials-")
    lines = os.path.join(data, "expiring.jsonl")
    config = os.path.join(data + "-config.json")
    with open(config, "w") as f:
        json.dump({
            "credentials": {"expiryNoticeDays": 30, "checkIntervalSeconds": 0.2},
            "endpoints": [{"name": "expiry", "type": "file", "path": lines}],
            "routes": [{"name": "expiring", "source": "CredentialExpiryEvents", "condition": "true", "endpointNames": ["expiry"], "isEnabled": True}],
        }, f)
    port = free_port()
    log = open(data + "-serve.log", "w")
    proc = subprocess.Popen([BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--config", config], stdout=log, stderr=subprocess.STDOUT)
    try:
        ca = wait_until_serving(proc, data, port)
        os.environ["REQUESTS_CA_BUNDLE"] = ca
        cs = subprocess.check_output([BINARY, "connection-string", "--data-dir", data]).decode().strip()
        registry = IoTHubRegistryManager.from_connection_string(cs)
        base = f"https://localhost:{port}"

        def session(policy):
            s = requests.Session()
            s.headers["Authorization"] = subprocess.check_output([BINARY, "sas-token", "--data-dir", data, "--policy", policy]).decode().strip()
            s.verify = ca
            return s

        owner, broker = session("iothubowner"), session("device")

        def device_auth(device_id, key):
            token = SasToken(f"localhost:{port}/devices/{device_id}", key, ttl=600)
            r = broker.post(f"{base}/registry/auth/device?api-version=2021-04-12", json={"deviceId": device_id, "token": str(token)})
            assert r.status_code == 200, r.text
            return r.json()

        windows = {"primary": {"notAfter": iso(datetime.timedelta(days=10))}, "secondary": {"notBefore": iso(datetime.timedelta(hours=1))}}
        body = {"authentication": {"type": "sas", "symmetricKey": {"primaryKey": KEY_A, "secondaryKey": KEY_B}, "validity": windows}}
        created = owner.put(f"{base}/devices/rotating?api-version=2021-04-12", json=body)
        assert created.status_code == 200, created.text
        ended = dict(body, authentication=dict(body["authentication"], validity={"primary": {"notAfter": iso(datetime.timedelta(minutes=-5))}}))
        assert owner.put(f"{base}/devices/ended?api-version=2021-04-12", json=ended).status_code == 200

        # Microsoft's SDK updates the device as it always does (status, the same keys): the windows stay.
        device = registry.get_device("rotating")
        assert device.authentication.symmetric_key.primary_key == KEY_A
        registry.update_device_with_sas("rotating", device.etag, KEY_A, KEY_B, "enabled")
        stored = owner.get(f"{base}/devices/rotating?api-version=2021-04-12").json()["authentication"]["validity"]
        assert same_time(stored["primary"]["notAfter"], windows["primary"]["notAfter"])
        assert same_time(stored["secondary"]["notBefore"], windows["secondary"]["notBefore"])

        assert device_auth("rotating", KEY_A)["result"] == "allow"
        assert device_auth("rotating", KEY_B) == {"result": "deny", "reason": "notYetValid"}
        assert device_auth("ended", KEY_A) == {"result": "deny", "reason": "credentialExpired"}

        listed = owner.get(f"{base}/registry/credentials/expiring?within=P30D&api-version=2021-04-12").json()
        assert [(c["deviceId"], c["credential"], c["expired"]) for c in listed] == [("ended", "primary", True), ("rotating", "primary", False)]
        assert KEY_A not in json.dumps(listed)

        # One notice per window entering its last 30 days, through the route to the file.
        def notices():
            if not os.path.exists(lines):
                return None
            found = [json.loads(line) for line in open(lines).read().splitlines()]
            return found if len(found) >= 2 else None

        delivered = eventually(notices, timeout=30)
        assert delivered, open(data + "-serve.log").read()[-3000:]
        assert sorted(m["applicationProperties"]["deviceId"] for m in delivered) == ["ended", "rotating"]
        assert all(m["source"] == "CredentialExpiryEvents" and m["applicationProperties"]["opType"] == "credentialExpiring" for m in delivered)
        rotating = [m for m in delivered if m["applicationProperties"]["deviceId"] == "rotating"][0]
        assert same_time(rotating["body"]["credentialValidity"]["primary"]["notAfter"], windows["primary"]["notAfter"])
        assert KEY_A not in open(lines).read()
        listed = owner.get(f"{base}/registry/credentials/expiring?within=P30D&api-version=2021-04-12").json()
        assert all(c["expiryNoticed"] for c in listed)
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    verify = subprocess.run([BINARY, "replay", "--data-dir", data, "--verify"], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # Still exactly one notice per window after all those scans.
    assert len(open(lines).read().splitlines()) == 2
