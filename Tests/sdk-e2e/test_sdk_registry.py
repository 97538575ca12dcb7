"""End to end: Microsoft's Python service SDK (azure-iot-hub 2.7.0) against a real `registryd serve`.

Run by tools/test.sh in its own virtual environment. The daemon runs over HTTPS with the local CA it
generates on first start; the SDK trusts it through REQUESTS_CA_BUNDLE, as a user would.
"""

import base64
import os
import subprocess
import tempfile
import time
import uuid

import pytest
import requests
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.sastoken import SasToken
from msrest.exceptions import HttpOperationError
from registryd_helpers import BINARY, free_port, wait_until_serving

KEY_A = base64.b64encode(bytes(range(32))).decode()
KEY_B = base64.b64encode(bytes(range(32, 64))).decode()
THUMB_1 = "A1" * 20
THUMB_2 = "b2" * 20


def storage_args(backend):
    """`--storage URL` for a node on the test PostgreSQL cluster (a hub of its own), or nothing for LMDB."""
    if backend == "lmdb":
        return []
    url = os.environ["REGISTRYD_TEST_POSTGRES_URL"]
    return ["--storage", url + ("&" if "?" in url else "?") + "hub=sdk-" + uuid.uuid4().hex[:8]]


# Every test runs against a node on LMDB and, where tools/test.sh started a PostgreSQL cluster
# (always in CI), against a node on PostgreSQL (issue 19).
BACKENDS = ["lmdb"] + (["postgres"] if os.environ.get("REGISTRYD_TEST_POSTGRES_URL") else [])


@pytest.fixture(scope="module", params=BACKENDS)
def daemon(request):
    data = tempfile.mkdtemp(prefix="registryd-sdk-")
    port = free_port()
    storage = storage_args(request.param)
    log = open(os.path.join(data, "serve.log"), "w")
    proc = subprocess.Popen(
        [BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"] + storage, stdout=log, stderr=subprocess.STDOUT
    )
    ca = wait_until_serving(proc, data, port)
    cs = subprocess.check_output([BINARY, "connection-string", "--data-dir", data] + storage).decode().strip()
    os.environ["REQUESTS_CA_BUNDLE"] = ca
    yield {"data": data, "port": port, "cs": cs, "ca": ca, "proc": proc, "storage": storage}
    proc.terminate()
    assert proc.wait(timeout=30) == 0, "graceful shutdown on SIGTERM"
    # Every mutation the SDK made is an event; the log replays to the live projections.
    verify = subprocess.run([BINARY, "replay", "--data-dir", data, "--verify"] + storage, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.fixture(scope="module")
def registry(daemon):
    return IoTHubRegistryManager.from_connection_string(daemon["cs"])


def status_of(call):
    with pytest.raises(HttpOperationError) as info:
        call()
    return info.value.response.status_code


def test_connection_string_shape(daemon):
    parts = dict(p.split("=", 1) for p in daemon["cs"].split(";"))
    assert parts["HostName"] == f"localhost:{daemon['port']}"
    assert parts["SharedAccessKeyName"] == "iothubowner"
    assert len(base64.b64decode(parts["SharedAccessKey"])) == 32


def test_device_with_generated_keys(registry):
    device = registry.create_device_with_sas("sdk-gen", None, None, "enabled")
    assert device.device_id == "sdk-gen"
    assert device.status == "enabled"
    assert device.etag
    assert device.authentication.type == "sas"
    pk, sk = device.authentication.symmetric_key.primary_key, device.authentication.symmetric_key.secondary_key
    assert len(base64.b64decode(pk)) == 32 and pk != sk
    assert device.connection_state == "Disconnected"
    fetched = registry.get_device("sdk-gen")
    assert fetched.etag == device.etag
    assert fetched.authentication.symmetric_key.primary_key == pk


def test_device_with_explicit_keys_x509_and_ca(registry):
    sas = registry.create_device_with_sas("sdk-keys", KEY_A, KEY_B, "enabled")
    assert sas.authentication.symmetric_key.primary_key == KEY_A
    x509 = registry.create_device_with_x509("sdk-x509", THUMB_1, THUMB_2, "enabled")
    assert x509.authentication.type == "selfSigned"
    assert x509.authentication.x509_thumbprint.primary_thumbprint == THUMB_1
    ca = registry.create_device_with_certificate_authority("sdk-ca", "disabled")
    assert ca.authentication.type == "certificateAuthority"
    assert ca.status == "disabled"
    edge = registry.create_device_with_sas("sdk-edge", None, None, "enabled", iot_edge=True)
    assert edge.capabilities.iot_edge is True


def test_disable_with_etag_and_stale_etag(registry):
    device = registry.create_device_with_sas("sdk-disable", None, None, "enabled")
    keys = device.authentication.symmetric_key
    updated = registry.update_device_with_sas("sdk-disable", device.etag, keys.primary_key, keys.secondary_key, "disabled", status_reason="stolen")
    assert updated.status == "disabled"
    assert updated.status_reason == "stolen"
    assert updated.etag != device.etag
    assert registry.get_device("sdk-disable").status == "disabled"
    # The old etag is stale now.
    assert status_of(lambda: registry.update_device_with_sas("sdk-disable", device.etag, keys.primary_key, keys.secondary_key, "enabled")) == 412
    # etag=None sends If-Match: "*": any version.
    again = registry.update_device_with_x509("sdk-disable", None, THUMB_1, None, "enabled")
    assert again.authentication.type == "selfSigned"


def test_delete_with_and_without_etag(registry):
    a = registry.create_device_with_sas("sdk-del-a", None, None, "enabled")
    registry.create_device_with_sas("sdk-del-b", None, None, "enabled")
    assert status_of(lambda: registry.delete_device("sdk-del-a", "c3RhbGU=")) == 412
    registry.delete_device("sdk-del-a", a.etag)
    registry.delete_device("sdk-del-b")
    assert status_of(lambda: registry.get_device("sdk-del-a")) == 404
    assert status_of(lambda: registry.get_device("sdk-del-b")) == 404


def test_not_found_conflict_and_invalid(registry):
    assert status_of(lambda: registry.get_device("sdk-missing")) == 404
    assert status_of(lambda: registry.delete_device("sdk-missing")) == 404
    registry.create_device_with_sas("sdk-dup", None, None, "enabled")
    assert status_of(lambda: registry.create_device_with_sas("sdk-dup", None, None, "enabled")) == 409
    assert status_of(lambda: registry.create_device_with_sas("bad#id", None, None, "enabled")) == 400
    assert status_of(lambda: registry.create_device_with_sas("sdk-badkey", "bm90LWEta2V5", KEY_B, "enabled")) == 400


def test_special_characters_in_ids(registry):
    device_id = "acc-sp:ec@ial$'(1)=,!*"
    created = registry.create_device_with_sas(device_id, None, None, "enabled")
    assert created.device_id == device_id
    assert registry.get_device(device_id).device_id == device_id
    registry.delete_device(device_id)


def test_modules(registry):
    registry.create_device_with_sas("sdk-modhost", None, None, "enabled")
    m1 = registry.create_module_with_sas("sdk-modhost", "m1", "IotEdge", None, None)
    assert m1.module_id == "m1" and m1.device_id == "sdk-modhost" and m1.managed_by == "IotEdge"
    assert len(base64.b64decode(m1.authentication.symmetric_key.primary_key)) == 32
    registry.create_module_with_x509("sdk-modhost", "m2", None, THUMB_1, THUMB_2)
    registry.create_module_with_certificate_authority("sdk-modhost", "m3", None)
    assert sorted(m.module_id for m in registry.get_modules("sdk-modhost")) == ["m1", "m2", "m3"]
    assert registry.get_module("sdk-modhost", "m2").authentication.type == "selfSigned"
    updated = registry.update_module_with_sas("sdk-modhost", "m1", "ops", m1.etag, KEY_A, KEY_B)
    assert updated.authentication.symmetric_key.primary_key == KEY_A
    assert status_of(lambda: registry.update_module_with_sas("sdk-modhost", "m1", "ops", m1.etag, KEY_A, KEY_B)) == 412
    ca = registry.update_module_with_certificate_authority("sdk-modhost", "m3", None, registry.get_module("sdk-modhost", "m3").etag)
    assert ca.authentication.type == "certificateAuthority"
    assert status_of(lambda: registry.create_module_with_sas("sdk-modhost", "m1", None, None, None)) == 409
    assert status_of(lambda: registry.get_module("sdk-modhost", "nope")) == 404
    assert status_of(lambda: registry.create_module_with_sas("sdk-nohost", "m1", None, None, None)) == 404
    registry.delete_module("sdk-modhost", "m2")
    registry.delete_module("sdk-modhost", "m1", updated.etag)
    assert [m.module_id for m in registry.get_modules("sdk-modhost")] == ["m3"]
    # Deleting the device deletes its remaining modules.
    registry.delete_device("sdk-modhost")
    assert status_of(lambda: registry.get_modules("sdk-modhost")) == 404


def test_list_and_statistics(registry):
    for i in range(3):
        registry.create_device_with_sas(f"sdk-list-{i}", None, None, "disabled" if i == 0 else "enabled")
    devices = registry.get_devices()
    ids = [d.device_id for d in devices]
    assert {"sdk-list-0", "sdk-list-1", "sdk-list-2"} <= set(ids)
    assert ids == sorted(ids, key=lambda s: s.encode())
    assert len(registry.get_devices(2)) == 2
    stats = registry.get_device_registry_statistics()
    assert stats.total_device_count == len(ids)
    assert stats.enabled_device_count + stats.disabled_device_count == stats.total_device_count
    assert stats.disabled_device_count >= 2  # sdk-ca and sdk-list-0
    assert registry.get_service_statistics().connected_device_count == 0


def test_wrong_key_and_expired_token_are_refused(daemon):
    parts = dict(p.split("=", 1) for p in daemon["cs"].split(";"))
    wrong = f"HostName={parts['HostName']};SharedAccessKeyName=iothubowner;SharedAccessKey={KEY_A}"
    assert status_of(lambda: IoTHubRegistryManager.from_connection_string(wrong).get_devices()) == 401
    unknown = f"HostName={parts['HostName']};SharedAccessKeyName=nobody;SharedAccessKey={parts['SharedAccessKey']}"
    assert status_of(lambda: IoTHubRegistryManager.from_connection_string(unknown).get_devices()) == 401
    url = f"https://{parts['HostName']}/devices?api-version=2021-04-12"
    expired = SasToken(parts["HostName"], parts["SharedAccessKey"], "iothubowner", ttl=-120)
    response = requests.get(url, headers={"Authorization": str(expired)}, verify=daemon["ca"])
    assert response.status_code == 401
    assert response.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"
    assert response.json()["Message"].startswith("ErrorCode:IotHubUnauthorizedAccess;")
    fresh = SasToken(parts["HostName"], parts["SharedAccessKey"], "iothubowner", ttl=60)
    assert requests.get(url, headers={"Authorization": str(fresh)}, verify=daemon["ca"]).status_code == 200
    assert requests.get(url, verify=daemon["ca"]).status_code == 401
    # A policy without RegistryWrite cannot create.
    read_cs = subprocess.check_output([BINARY, "connection-string", "--data-dir", daemon["data"], "--policy", "registryRead"] + daemon["storage"]).decode().strip()
    reader = IoTHubRegistryManager.from_connection_string(read_cs)
    assert reader.get_device_registry_statistics().total_device_count >= 0
    assert status_of(lambda: reader.create_device_with_sas("sdk-readonly", None, None, "enabled")) == 401


def test_bulk_create_update_delete_with_partial_failure(registry):
    from azure.iot.hub.models import AuthenticationMechanism, ExportImportDevice, SymmetricKey

    def entry(device_id, mode, status="enabled", etag=None, auth=None):
        return ExportImportDevice(id=device_id, import_mode=mode, status=status, e_tag=etag,
                                  authentication=auth or AuthenticationMechanism(type="sas"))

    result = registry.bulk_create_or_update_devices([entry(f"sdk-bulk-{i}", "create") for i in range(5)])
    assert result.is_successful is True and not result.errors
    assert len(base64.b64decode(registry.get_device("sdk-bulk-0").authentication.symmetric_key.primary_key)) == 32
    explicit = AuthenticationMechanism(type="sas", symmetric_key=SymmetricKey(primary_key=KEY_A, secondary_key=KEY_B))
    etag = registry.get_device("sdk-bulk-2").etag
    result = registry.bulk_create_or_update_devices([
        entry("sdk-bulk-0", "create"),                                   # exists: fails
        entry("sdk-bulk-1", "update", status="disabled", auth=explicit),
        entry("sdk-bulk-2", "updateIfMatchETag", status="disabled", etag="c3RhbGU="),  # stale: fails
        entry("sdk-bulk-3", "deleteIfMatchETag", etag=registry.get_device("sdk-bulk-3").etag),
        entry("sdk-bulk-4", "delete"),
        entry("sdk-bulk-9", "create"),
    ])
    # 400 is not an exception for the SDK: it returns the per-entry result.
    assert result.is_successful is False
    failed = {(e.device_id, e.error_code) for e in result.errors}
    assert failed == {("sdk-bulk-0", "DeviceAlreadyExists"), ("sdk-bulk-2", "PreconditionFailed")}
    assert registry.get_device("sdk-bulk-1").status == "disabled"
    assert registry.get_device("sdk-bulk-1").authentication.symmetric_key.primary_key == KEY_A
    assert registry.get_device("sdk-bulk-2").etag == etag
    assert status_of(lambda: registry.get_device("sdk-bulk-3")) == 404
    assert status_of(lambda: registry.get_device("sdk-bulk-4")) == 404
    assert registry.get_device("sdk-bulk-9").device_id == "sdk-bulk-9"
    too_many = [entry(f"sdk-over-{i}", "create") for i in range(101)]
    assert status_of(lambda: registry.bulk_create_or_update_devices(too_many)) == 413
    assert status_of(lambda: registry.get_device("sdk-over-0")) == 404


def test_query_with_paging_projections_and_counts(registry):
    from azure.iot.hub.models import QuerySpecification

    for i in range(5):
        registry.create_device_with_sas(f"q-{i}", None, None, "disabled" if i % 2 == 0 else "enabled")
    registry.create_module_with_sas("q-1", "qmod", "ops", None, None)

    # SELECT *: Twin items, two per page, followed with the continuation token as the SDK does.
    spec = QuerySpecification(query="SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'q-') AND status = 'disabled'")
    seen, token, pages = [], None, 0
    while True:
        result = registry.query_iot_hub(spec, continuation_token=token, max_item_count=2)
        assert result.type == "Twin"
        seen += [twin.device_id for twin in result.items]
        assert all(twin.status == "disabled" and twin.authentication_type == "sas" for twin in result.items)
        pages += 1
        token = result.continuation_token
        if not token:
            break
    assert seen == ["q-0", "q-2", "q-4"]
    assert pages == 2

    # Projections and aggregates are Raw items.
    raw = registry.query_iot_hub(QuerySpecification(query="SELECT deviceId, status FROM devices WHERE deviceId IN ['q-1', 'q-3']"))
    assert raw.type == "Raw"
    # The SDK reads every item as a Twin; projected fields land on it, others in additional_properties.
    assert [(t.device_id, t.status, t.etag) for t in raw.items] == [("q-1", "enabled", None), ("q-3", "enabled", None)]
    counted = registry.query_iot_hub(QuerySpecification(query="SELECT status, COUNT() AS n FROM devices WHERE STARTS_WITH(deviceId, 'q-') GROUP BY status"))
    assert sorted((t.status, t.additional_properties["n"]) for t in counted.items) == [("disabled", 3), ("enabled", 2)]
    modules = registry.query_iot_hub(QuerySpecification(query="SELECT * FROM devices.modules WHERE moduleId = 'qmod'"))
    assert [(t.device_id, t.module_id) for t in modules.items] == [("q-1", "qmod")]

    # A malformed query is a 400 naming the position.
    with pytest.raises(HttpOperationError) as info:
        registry.query_iot_hub(QuerySpecification(query="SELECT * FROM devices WHERE status = "))
    assert info.value.response.status_code == 400
    assert "position 38" in info.value.response.text


def test_twin_tags_through_the_sdk(registry):
    from azure.iot.hub.models import QuerySpecification, Twin

    device = registry.create_device_with_sas("tagged-1", None, None, "enabled")
    twin = registry.get_twin("tagged-1")
    assert twin.tags == {} and twin.device_etag == device.etag
    updated = registry.update_twin("tagged-1", Twin(tags={"location": {"region": "eu", "building": "43"}}), twin.etag)
    assert updated.tags == {"location": {"region": "eu", "building": "43"}}
    assert updated.etag != twin.etag
    # The identity etag did not move: an etag-guarded identity update still succeeds.
    registry.update_device_with_sas("tagged-1", device.etag, None, None, "disabled")
    # A stale twin etag is refused.
    with pytest.raises(HttpOperationError) as info:
        registry.update_twin("tagged-1", Twin(tags={"x": 1}), twin.etag)
    assert info.value.response.status_code == 412
    found = registry.query_iot_hub(QuerySpecification(query="SELECT * FROM devices WHERE tags.location.region = 'eu'"))
    assert [t.device_id for t in found.items] == ["tagged-1"]
    assert found.items[0].tags["location"]["building"] == "43"
    replaced = registry.replace_twin("tagged-1", Twin(tags={"only": "this"}))
    assert replaced.tags == {"only": "this"}
