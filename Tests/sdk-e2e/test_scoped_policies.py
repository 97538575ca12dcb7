"""End to end: scoped policies (issue 22, item 3) against `registryd serve` on LMDB and on
PostgreSQL. The owner adds a policy scoped to device ids starting `lyon-` over HTTPS; Microsoft's
SDK, given that policy's connection string, then lists, queries, counts, reads and writes only
inside the scope, and is refused (401) outside it."""

import pytest
import requests
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import QuerySpecification
from azure.iot.hub.sastoken import SasToken
from msrest.exceptions import HttpOperationError
from test_sdk_registry import BACKENDS, daemon, storage_args  # noqa: F401 (fixtures)


def test_the_sdk_with_a_scoped_policy_sees_and_changes_only_its_devices(daemon):
    owner = IoTHubRegistryManager.from_connection_string(daemon["cs"])
    for device_id in ["lyon-a", "lyon-b", "paris-a"]:
        owner.create_device_with_sas(device_id, None, None, "enabled")
    base = f"https://localhost:{daemon['port']}"
    parts = dict(p.split("=", 1) for p in daemon["cs"].split(";"))

    owner_token = str(SasToken(parts["HostName"], parts["SharedAccessKey"], "iothubowner", ttl=600))
    added = requests.put(
        f"{base}/registry/policies/lyon-ops?api-version=2021-04-12",
        json={"rights": "RegistryRead, RegistryWrite, ServiceConnect", "scope": {"deviceIdPrefixes": ["lyon-"]}},
        headers={"Authorization": owner_token},
        verify=daemon["ca"],
    )
    assert added.status_code == 200, added.text
    assert added.json()["scope"] == {"deviceIdPrefixes": ["lyon-"]}
    scoped_cs = f"HostName={parts['HostName']};SharedAccessKeyName=lyon-ops;SharedAccessKey={added.json()['primaryKey']}"
    scoped = IoTHubRegistryManager.from_connection_string(scoped_cs)

    assert sorted(d.device_id for d in scoped.get_devices()) == ["lyon-a", "lyon-b"]
    result = scoped.query_iot_hub(QuerySpecification(query="SELECT * FROM devices"))
    assert sorted(t.device_id for t in result.items) == ["lyon-a", "lyon-b"]
    assert scoped.get_device("lyon-a").device_id == "lyon-a"
    with pytest.raises(HttpOperationError) as info:
        scoped.get_device("paris-a")
    assert info.value.response.status_code == 404

    scoped.create_device_with_sas("lyon-c", None, None, "enabled")
    scoped.update_device_with_sas("lyon-a", "*", None, None, "disabled")
    assert owner.get_device("lyon-a").status == "disabled"
    with pytest.raises(HttpOperationError) as info:
        scoped.create_device_with_sas("paris-b", None, None, "enabled")
    assert info.value.response.status_code == 401
    assert info.value.response.headers["iothub-errorcode"] == "IotHubUnauthorizedAccess"
    with pytest.raises(HttpOperationError) as info:
        scoped.delete_device("paris-a")
    assert info.value.response.status_code == 401
    assert owner.get_device("paris-a").status == "enabled"
    assert sorted(d.device_id for d in owner.get_devices() if d.device_id.startswith(("lyon", "paris"))) == ["lyon-a", "lyon-b", "lyon-c", "paris-a"]
    # Counted inside the scope.
    assert scoped.get_device_registry_statistics().total_device_count == 3
