"""End to end (issue 20): devices connect through a real MQTT broker that asks registryd.

A private RabbitMQ node (Debian's rabbitmq-server, tools/rabbitmq.sh: MQTT over TLS with the
certificate registryd's local CA issued, its HTTP auth backend pointed at `registryd serve`, the
broker authenticating with a DeviceConnect token) and `registryd rabbitmq-bridge` feeding
connection state back. Devices are Microsoft's device SDK (azure-iot-device 2.14.0) and, where a
device must misbehave, paho (the SDK's own MQTT library) speaking Azure's MQTT convention.
Identities are created and read through Microsoft's service SDK (azure-iot-hub), which runs in
its own virtual environment (Tests/sdk-e2e/service_sdk.py).
"""

import base64
import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import paho.mqtt.client as mqtt
import pytest
import requests
from azure.iot.device import IoTHubDeviceClient, IoTHubModuleClient, Message
from azure.iot.device.exceptions import ClientError, CredentialError, ConnectionFailedError, OperationCancelled

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "sdk-e2e"))
from registryd_helpers import BINARY, ROOT, eventually, free_port, wait_until_serving  # noqa: E402

HUB = "hub.registry.test"
RABBITMQ = os.path.join(ROOT, "tools", "rabbitmq.sh")
SERVICE_PYTHON = os.environ.get("REGISTRYD_SDK_PYTHON", os.path.join(ROOT, ".build", "sdk-venv", "bin", "python"))
SERVICE_SDK = os.path.join(ROOT, "Tests", "sdk-e2e", "service_sdk.py")


@pytest.fixture(scope="module")
def broker():
    # Every process started here is stopped on the way out, also when a later step fails.
    with contextlib.ExitStack() as cleanup:
        yield from start_broker(cleanup)


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def start_broker(cleanup):
    data = tempfile.mkdtemp(prefix="registryd-broker-")
    lifecycle = os.path.join(data, "connections.jsonl")
    config = os.path.join(data, "registryd.json")
    with open(config, "w") as f:
        json.dump({
            "deviceAuth": {"hostNames": [HUB]},
            "endpoints": [{"name": "connections", "type": "file", "path": lifecycle}],
            "routes": [{"name": "connections", "source": "DeviceConnectionStateEvents", "condition": "true",
                        "endpointNames": ["connections"]}],
        }, f)
    port = free_port()
    log = open(os.path.join(data, "serve.log"), "w")
    # Devices name the broker's hub (deviceAuth.hostNames); the service SDK names the registry.
    serve = subprocess.Popen([BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--config", config],
                             stdout=log, stderr=subprocess.STDOUT)
    cleanup.callback(stop, serve)
    ca = wait_until_serving(serve, data, port)
    tls = os.path.join(data, "tls")

    def tool(*args):
        return subprocess.check_output([BINARY, *args, "--data-dir", data]).decode().strip()

    # The broker's credential: a DeviceConnect token as HTTP Basic password in the auth URL
    # (RabbitMQ cannot send other headers), percent-encoded as a URL's user info must be.
    broker_token = tool("sas-token", "--policy", "device", "--ttl", "7200")
    auth_url = f"https://device:{urllib.parse.quote(broker_token, safe='')}@localhost:{port}"
    rabbit = os.path.join(data, "rabbitmq")
    cleanup.callback(subprocess.run, [RABBITMQ, "stop", rabbit], check=False)
    started = subprocess.run(
        [RABBITMQ, "start", rabbit, "--auth-url", auth_url, "--tls-cert", os.path.join(tls, "server.pem"),
         "--tls-key", os.path.join(tls, "server-key.pem"), "--tls-ca", os.path.join(tls, "ca.pem")],
        capture_output=True, text=True)
    assert started.returncode == 0, started.stdout + started.stderr
    env = dict(item.split("=", 1) for item in started.stdout.strip().splitlines()[-1].split())

    # The bridge: the broker's open connections → /registry/connections.
    token_file = os.path.join(data, "bridge.token")
    password_file = os.path.join(data, "management.password")
    for path, secret in ((token_file, broker_token), (password_file, env["OBSERVER_PASS"])):
        with open(path, "w") as f:
            f.write(secret + "\n")
        os.chmod(path, 0o600)
    bridge = subprocess.Popen(
        [BINARY, "rabbitmq-bridge", "--management", f"http://127.0.0.1:{env['MANAGEMENT_PORT']}",
         "--management-user", env["OBSERVER_USER"], "--management-password-file", password_file,
         "--registry", f"https://localhost:{port}", "--token-file", token_file, "--ca-file", ca, "--interval", "0.2"],
        stdout=open(os.path.join(data, "bridge.log"), "w"), stderr=subprocess.STDOUT)
    cleanup.callback(stop, bridge)

    # Everything the observer (an internal broker user, never asking registryd) sees on device topics.
    seen = []
    observer = mqtt.Client(client_id="observer", protocol=mqtt.MQTTv311)
    observer.username_pw_set(env["OBSERVER_USER"], env["OBSERVER_PASS"])
    observer.on_message = lambda c, u, m: seen.append((m.topic, m.payload.decode(errors="replace")))
    observer.connect("127.0.0.1", int(env["MQTT_PORT"]))
    observer.subscribe([("devices/#", 1)])
    observer.loop_start()
    cleanup.callback(observer.loop_stop)

    http = requests.Session()
    http.verify = ca
    http.trust_env = False
    yield {
        "data": data, "ca": ca, "env": env, "seen": seen, "lifecycle": lifecycle, "http": http,
        "url": f"https://localhost:{port}", "owner": tool("sas-token"), "cs": tool("connection-string"),
        "gateway": env["MQTTS_HOST"],
    }
    # The tests ran: the daemon stops cleanly, its log verifies and holds no token.
    observer.loop_stop()
    stop(bridge)
    subprocess.run([RABBITMQ, "stop", rabbit], check=False)
    serve.terminate()
    assert serve.wait(timeout=30) == 0
    verify = subprocess.run([BINARY, "audit", "verify", "--data-dir", data], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # No token (the devices', the broker's) in registryd's or the bridge's log lines.
    for name in ("serve.log", "bridge.log"):
        with open(os.path.join(data, name)) as f:
            text = f.read()
        assert "sig=" not in text and "sig%3D" not in text, name


def service(b, *args):
    """One call of Microsoft's service SDK (in its own virtual environment)."""
    env = dict(os.environ, REQUESTS_CA_BUNDLE=b["ca"])
    out = subprocess.run([SERVICE_PYTHON, SERVICE_SDK, b["cs"], *args], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def device_client(b, device_id, key, module_id=None):
    # The SDK always dials port 8883; GatewayHostName moves only the host it dials (and checks
    # the certificate against), the user name and token keep the hub's name.
    module = f";ModuleId={module_id}" if module_id else ""
    cs = f"HostName={HUB};DeviceId={device_id}{module};SharedAccessKey={key};GatewayHostName=localhost"
    kind = IoTHubModuleClient if module_id else IoTHubDeviceClient
    with open(b["ca"]) as f:
        return kind.create_from_connection_string(cs, server_verification_cert=f.read(), connection_retry=False)


def token(device_id, key, ttl=3600, module_id=None):
    resource = f"{HUB}/devices/{device_id}" + (f"/modules/{module_id}" if module_id else "")
    sr = urllib.parse.quote(resource, safe="")
    expiry = int(time.time()) + ttl
    signature = base64.b64encode(hmac.new(base64.b64decode(key), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()).decode()
    return f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(signature, safe='')}&se={expiry}"


class Paho:
    """A device speaking Azure's MQTT convention through paho, for what the SDK will not do."""

    def __init__(self, b, device_id, password, client_id=None):
        self.connack = None
        self.disconnected = threading.Event()
        self.subacks = []
        self.client = mqtt.Client(client_id=client_id or device_id, protocol=mqtt.MQTTv311, clean_session=True)
        self.client.username_pw_set(f"{HUB}/{device_id}/?api-version=2021-04-12", password)
        self.client.on_connect = lambda c, u, f, rc: setattr(self, "connack", rc)
        self.client.on_disconnect = lambda c, u, rc: self.disconnected.set()
        self.client.on_subscribe = lambda c, u, mid, q: self.subacks.append(q)
        self.client.tls_set(ca_certs=b["ca"])
        self.client.connect("localhost", 8883)
        self.client.loop_start()
        deadline = time.time() + 20
        while self.connack is None and not self.disconnected.is_set() and time.time() < deadline:
            time.sleep(0.05)

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()



def decisions(b, result):
    text = b["http"].get(b["url"] + "/metrics", headers={"Authorization": b["owner"]}).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("registryd_topic_decisions_total{") and 'broker="rabbitmq"' in line and f'result="{result}"' in line)


def test_a_device_and_a_module_send_telemetry_through_the_broker(broker):
    b = broker
    dev = service(b, "create-device", "car-1")
    mod = service(b, "create-module", "car-1", "engine")
    client = device_client(b, "car-1", dev["primaryKey"])
    client.connect()
    client.send_message(Message("speed=42"))
    assert eventually(lambda: any(t.startswith("devices/car-1/messages/events/") and p == "speed=42" for t, p in b["seen"]), timeout=20)
    module = device_client(b, "car-1", mod["primaryKey"], module_id="engine")
    module.connect()
    module.send_message(Message("rpm=3000"))
    assert eventually(lambda: any(t.startswith("devices/car-1/modules/engine/messages/events/") and p == "rpm=3000" for t, p in b["seen"]), timeout=20)
    # Connecting set connectionState (through the bridge), as the service SDK reads it.
    assert eventually(lambda: service(b, "get-device", "car-1")["connectionState"] == "Connected", timeout=20)
    client.shutdown()
    module.shutdown()
    assert eventually(lambda: service(b, "get-device", "car-1")["connectionState"] == "Disconnected", timeout=20)
    # And both changes went out on the DeviceConnectionStateEvents route.
    def route_ops():
        if not os.path.exists(b["lifecycle"]):
            return []
        with open(b["lifecycle"]) as f:
            return [(m["applicationProperties"]["opType"], m["applicationProperties"]["deviceId"]) for m in map(json.loads, f)]
    assert eventually(lambda: ("deviceConnected", "car-1") in route_ops() and ("deviceDisconnected", "car-1") in route_ops(), timeout=20)


def test_bad_credentials_are_refused_at_connect(broker):
    b = broker
    dev = service(b, "create-device", "car-2")
    wrong = base64.b64encode(b"w" * 32).decode()
    with pytest.raises((CredentialError, ConnectionFailedError, ClientError)):
        device_client(b, "car-2", wrong).connect()
    with pytest.raises((CredentialError, ConnectionFailedError, ClientError)):
        device_client(b, "nobody", wrong).connect()
    # An expired token (the SDK will not send one, paho will): CONNACK 4, bad user name or password.
    expired = Paho(b, "car-2", token("car-2", dev["primaryKey"], ttl=-60))
    assert expired.connack == 4
    expired.close()
    good = Paho(b, "car-2", token("car-2", dev["primaryKey"]))
    assert good.connack == 0
    good.close()
    # A device using another's client id is refused (the broker does not compare them; registryd does).
    impostor = Paho(b, "car-2", token("car-2", dev["primaryKey"]), client_id="car-1")
    assert impostor.connack == 4
    impostor.close()
    # Disabled: the next connection attempt fails.
    connected = device_client(b, "car-2", dev["primaryKey"])
    connected.connect()
    assert service(b, "set-status", "car-2", "disabled")["status"] == "disabled"
    connected.shutdown()
    with pytest.raises((CredentialError, ConnectionFailedError, ClientError)):
        device_client(b, "car-2", dev["primaryKey"]).connect()


def test_a_device_cannot_use_another_devices_topics(broker):
    b = broker
    mine = service(b, "create-device", "car-3")
    service(b, "create-device", "car-4")
    denied_before = decisions(b, "deny")
    # Publishing as car-4: the broker asks registryd, which denies, and the broker drops the client.
    spoof = Paho(b, "car-3", token("car-3", mine["primaryKey"]))
    assert spoof.connack == 0
    spoof.client.publish("devices/car-4/messages/events/", b"forged", qos=1)
    assert spoof.disconnected.wait(15), "the broker closes a connection that publishes where it may not"
    spoof.close()
    # Subscribing to car-4's cloud-to-device messages, or to every device's: no SUBACK, disconnected.
    for topic in ["devices/car-4/messages/devicebound/#", "devices/+/messages/devicebound/#", "$iothub/methods/POST/#"]:
        snoop = Paho(b, "car-3", token("car-3", mine["primaryKey"]))
        snoop.client.subscribe(topic, qos=1)
        assert snoop.disconnected.wait(15), topic
        assert snoop.subacks == [], topic
        snoop.close()
    assert decisions(b, "deny") >= denied_before + 4
    assert not any(p == "forged" for _, p in b["seen"]), "nothing forged reached a subscriber"
    # Its own topics still work, through the SDK.
    client = device_client(b, "car-3", mine["primaryKey"])
    client.connect()
    client.send_message(Message("own"))
    received = []
    client.on_message_received = received.append
    assert eventually(lambda: any(t.startswith("devices/car-3/messages/events/") and p == "own" for t, p in b["seen"]), timeout=20)
    client.shutdown()
    assert decisions(b, "allow") > 0
