"""End to end: undelete (issue 22, item 4) against `registryd serve` on LMDB and on PostgreSQL.
Microsoft's SDK creates and deletes the identities and reads them back; the restore itself
(which the SDK has no call for) goes over HTTPS as curl would send it. The restored device's old
keys admit it again at the broker's device-authentication route."""

import subprocess

import requests
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin
from azure.iot.hub.sastoken import SasToken
from registryd_helpers import BINARY
from test_sdk_registry import BACKENDS, KEY_A, KEY_B, daemon, storage_args  # noqa: F401 (fixtures)


def session(daemon, policy="iothubowner"):
    s = requests.Session()
    s.headers["Authorization"] = subprocess.check_output(
        [BINARY, "sas-token", "--data-dir", daemon["data"], "--policy", policy] + daemon["storage"]
    ).decode().strip()
    s.verify = daemon["ca"]
    return s


def test_a_deleted_device_and_its_modules_come_back_with_their_keys(daemon):
    registry = IoTHubRegistryManager.from_connection_string(daemon["cs"])
    base = f"https://localhost:{daemon['port']}"
    owner, broker = session(daemon), session(daemon, "device")
    registry.create_device_with_sas("restore-me", KEY_A, KEY_B, "enabled")
    registry.create_module_with_sas("restore-me", "telemetry", None, KEY_B, KEY_A)
    twin = registry.get_twin("restore-me")
    registry.update_twin("restore-me", Twin(tags={"site": "lyon"}), twin.etag)
    original = registry.get_device("restore-me")
    token = SasToken(f"localhost:{daemon['port']}/devices/restore-me", KEY_A, ttl=600)

    def device_auth():
        r = broker.post(f"{base}/registry/auth/device?api-version=2021-04-12", json={"deviceId": "restore-me", "token": str(token)})
        assert r.status_code == 200, r.text
        return r.json()

    assert device_auth()["result"] == "allow"
    registry.delete_device("restore-me")
    assert device_auth() == {"result": "deny", "reason": "unknownIdentity"}

    restored = owner.post(f"{base}/registry/devices/restore-me/restore?modules=true&api-version=2021-04-12")
    assert restored.status_code == 200, restored.text
    deletion = restored.json()["restoredFrom"]
    history = owner.get(f"{base}/registry/devices/restore-me/history?api-version=2021-04-12").json()
    assert [e["type"] for e in history if e["seq"] == deletion] == ["deviceDeleted"]

    device = registry.get_device("restore-me")
    assert device.authentication.symmetric_key.primary_key == KEY_A
    assert device.authentication.symmetric_key.secondary_key == KEY_B
    assert device.generation_id != original.generation_id and device.etag != original.etag
    assert registry.get_twin("restore-me").tags == {"site": "lyon"}
    module = registry.get_module("restore-me", "telemetry")
    assert module.authentication.symmetric_key.primary_key == KEY_B
    assert device_auth()["result"] == "allow"

    # The id is registered again: a second restore is a 409 in Azure's error shape.
    again = owner.post(f"{base}/registry/devices/restore-me/restore?api-version=2021-04-12")
    assert again.status_code == 409 and again.headers["iothub-errorcode"] == "DeviceAlreadyExists"
    assert again.json()["Message"].startswith("ErrorCode:DeviceAlreadyExists;")
