"""Microsoft's service SDK (azure-iot-hub) for a suite that runs in another virtual environment
(the device SDK's, whose dependency set differs): one call per process, its result as JSON.

    python service_sdk.py CONNECTION_STRING create-device ID
    python service_sdk.py CONNECTION_STRING create-module ID MODULE
    python service_sdk.py CONNECTION_STRING set-status ID enabled|disabled
    python service_sdk.py CONNECTION_STRING get-device ID

The registry's CA comes from REQUESTS_CA_BUNDLE, as for any client of the SDK.
"""

import json
import sys

from azure.iot.hub import IoTHubRegistryManager


def main():
    connection_string, command, *args = sys.argv[1:]
    registry = IoTHubRegistryManager.from_connection_string(connection_string)
    if command == "create-device":
        identity = registry.create_device_with_sas(args[0], None, None, "enabled")
    elif command == "create-module":
        identity = registry.create_module_with_sas(args[0], args[1], None, None, None)
    elif command == "set-status":
        device = registry.get_device(args[0])
        keys = device.authentication.symmetric_key
        identity = registry.update_device_with_sas(args[0], device.etag, keys.primary_key, keys.secondary_key, args[1])
    elif command == "get-device":
        identity = registry.get_device(args[0])
    else:
        raise SystemExit(f"unknown command {command}")
    keys = identity.authentication.symmetric_key
    print(json.dumps({
        "primaryKey": keys.primary_key,
        "secondaryKey": keys.secondary_key,
        "status": getattr(identity, "status", None),
        "connectionState": identity.connection_state,
        "etag": identity.etag,
    }))


if __name__ == "__main__":
    main()
