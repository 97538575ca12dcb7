"""End to end: lifecycle routing from a real `registryd serve` to a real webhook receiver.

The receiver verifies every request with the off-the-shelf `standardwebhooks` package, as a
subscriber would. Devices are managed with Microsoft's SDK. The daemon is killed with SIGKILL
mid-delivery and restarted; nothing may be lost and order must hold (duplicates allowed).
"""

import json
import os
import signal
import subprocess
import tempfile
import time

import pytest
import requests
from azure.iot.hub import IoTHubRegistryManager
from registryd_helpers import BINARY, free_port, wait_until_serving
from webhook_receiver import SECRET, Receiver

class Daemon:
    def __init__(self, data, config):
        self.data, self.config, self.port, self.proc = data, config, free_port(), None

    def start(self):
        log = open(os.path.join(self.data, "serve.log"), "a")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}", "--config", self.config],
            stdout=log, stderr=subprocess.STDOUT)
        ca = wait_until_serving(self.proc, self.data, self.port)
        os.environ["REQUESTS_CA_BUNDLE"] = ca
        cs = subprocess.check_output([BINARY, "connection-string", "--data-dir", self.data]).decode().strip()
        self.registry = IoTHubRegistryManager.from_connection_string(cs)
        self.token = subprocess.check_output([BINARY, "sas-token", "--data-dir", self.data]).decode().strip()

    def log(self):
        with open(os.path.join(self.data, "serve.log")) as f:
            return f.read()

    def api(self, method, path):
        return requests.request(method, f"https://localhost:{self.port}{path}", headers={"Authorization": self.token},
                                verify=os.path.join(self.data, "tls", "ca.pem"))


@pytest.fixture(scope="module")
def setup():
    receiver = Receiver()
    data = tempfile.mkdtemp(prefix="registryd-routing-")
    config = os.path.join(data, "registryd.json")
    with open(config, "w") as f:
        json.dump({
            "endpoints": [
                {"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{receiver.port}/events", "secret": SECRET, "timeoutMs": 2000},
                {"name": "audit", "type": "file", "path": os.path.join(data, "filtered.jsonl")},
            ],
            "routes": [
                {"name": "all", "source": "DeviceLifecycleEvents", "condition": "true", "endpointNames": ["hook"], "isEnabled": True},
                {"name": "filtered", "source": "DeviceLifecycleEvents",
                 "condition": "opType = 'deleteDeviceIdentity' AND starts_with(deviceId, 'keep-')", "endpointNames": ["audit"], "isEnabled": True},
            ],
            "delivery": {"initialBackoffMs": 20, "maxBackoffMs": 200, "retryWindowSeconds": 3600},
        }, f)
    daemon = Daemon(data, config)
    daemon.start()
    yield receiver, daemon
    if daemon.proc.poll() is None:
        daemon.proc.terminate()
        daemon.proc.wait(timeout=30)
    verify = subprocess.run([BINARY, "replay", "--data-dir", data, "--verify"], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout


def first_occurrences(ops):
    seen, order = set(), []
    for op in ops:
        if op[2] not in seen:
            seen.add(op[2])
            order.append(op)
    return order


def test_every_create_and_delete_arrives_signed_in_order(setup):
    receiver, daemon = setup
    for i in range(15):
        daemon.registry.create_device_with_sas(f"keep-{i:02}", None, None, "enabled")
    daemon.registry.create_module_with_sas("keep-00", "m1", None, None, None)
    daemon.registry.update_device_with_sas("keep-01", None, None, None, "disabled")  # not a lifecycle event
    for i in range(3):
        daemon.registry.delete_device(f"keep-{i:02}")
    receiver.wait_for(lambda: len(receiver.ops()) >= 20, "20 messages")
    ops = receiver.ops()
    assert [o[:2] for o in ops[:15]] == [("createDeviceIdentity", f"keep-{i:02}") for i in range(15)]
    assert ops[15][:2] == ("createDeviceIdentity", "keep-00")  # the module, Azure-style
    assert [o[:2] for o in ops[16:]] == [("deleteDeviceIdentity", "keep-00")] * 2 + [("deleteDeviceIdentity", f"keep-{i:02}") for i in (1, 2)]
    assert [o[2] for o in ops] == sorted(o[2] for o in ops)
    assert receiver.bad_signatures == 0
    # The filtered route wrote only the deletes of keep-* devices to its file.
    lines = [json.loads(l) for l in open(os.path.join(daemon.data, "filtered.jsonl"))]
    assert [(l["applicationProperties"]["opType"], l["applicationProperties"]["deviceId"]) for l in lines] == \
        [("deleteDeviceIdentity", "keep-00")] * 2 + [("deleteDeviceIdentity", "keep-01"), ("deleteDeviceIdentity", "keep-02")]


def test_receiver_down_then_back_loses_nothing(setup):
    receiver, daemon = setup
    before = len(receiver.ops())
    receiver.mode = "down"
    for i in range(10):
        daemon.registry.create_device_with_sas(f"outage-{i}", None, None, "enabled")
    # The route reports the outage once an attempt failed (waited for, not guessed with a sleep).
    deadline = time.time() + 30
    while True:
        status = [r for r in daemon.api("GET", "/registry/routes").json() if r["name"] == "all"][0]
        if status["health"] == "unhealthy" or time.time() > deadline:
            break
        time.sleep(0.05)
    assert status["health"] == "unhealthy" and status["lag"] > 0
    receiver.mode = "ok"
    receiver.wait_for(lambda: len(receiver.ops()) >= before + 10, "the outage backlog")
    assert [o[1] for o in receiver.ops()[before:]] == [f"outage-{i}" for i in range(10)]


def test_sigkill_mid_delivery_then_restart(setup):
    receiver, daemon = setup
    receiver.delay = 0.05
    before = len(receiver.ops())
    for i in range(20):
        daemon.registry.create_device_with_sas(f"crash-{i:02}", None, None, "enabled")
    receiver.wait_for(lambda: len(receiver.ops()) >= before + 3, "the first deliveries")
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait()
    receiver.delay = 0
    daemon.start()
    daemon.registry.create_device_with_sas("after-restart", None, None, "enabled")
    receiver.wait_for(lambda: any(o[1] == "after-restart" for o in receiver.ops()), "delivery after the restart")
    delivered = first_occurrences(receiver.ops()[before:])
    assert [o[1] for o in delivered] == [f"crash-{i:02}" for i in range(20)] + ["after-restart"]
    duplicates = len(receiver.ops()) - before - len(delivered)
    assert duplicates <= 256, "duplicates are bounded by one read batch"


def test_gone_endpoint_is_dead_until_enabled(setup):
    receiver, daemon = setup
    receiver.mode = "gone"
    daemon.registry.create_device_with_sas("after-gone", None, None, "enabled")
    deadline = time.time() + 30
    while time.time() < deadline:
        status = [r for r in daemon.api("GET", "/registry/routes").json() if r["name"] == "all"][0]
        if status["health"] == "dead":
            break
        time.sleep(0.05)
    assert status["health"] == "dead"
    assert daemon.api("POST", "/registry/routes/nope/enable").status_code == 404
    receiver.mode = "ok"
    assert daemon.api("POST", "/registry/routes/all/enable").status_code == 200
    receiver.wait_for(lambda: any(o[1] == "after-gone" for o in receiver.ops()), "delivery after enable")
    assert daemon.api("GET", "/registry/routes/all/parked").json() == []


def test_sighup_reload_adds_an_https_route_with_a_private_ca(setup):
    receiver, daemon = setup
    # A second receiver over HTTPS, with a certificate from the daemon's own local CA (a private
    # CA the webhook endpoint trusts through caFile).
    import ssl
    secure = Receiver()
    tls = os.path.join(daemon.data, "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(tls, "server.pem"), os.path.join(tls, "server-key.pem"))
    secure.server.socket = context.wrap_socket(secure.server.socket, server_side=True)
    config = json.load(open(daemon.config))
    config["endpoints"].append({"name": "secure", "type": "webhook", "url": f"https://localhost:{secure.port}/events",
                                "secret": SECRET, "caFile": os.path.join(tls, "ca.pem")})
    config["routes"].append({"name": "secure", "source": "DeviceIdentityChangeEvents", "condition": "starts_with(deviceId, 'tls-')",
                             "endpointNames": ["secure"], "isEnabled": True})
    # A broken file is refused on SIGHUP and the running routes stay. The refusal's log line says
    # the daemon has handled the signal, so what follows checks its outcome, not a guess at time.
    with open(daemon.config, "w") as f:
        f.write('{"routes": [{"name": "bad name!"}]}')
    refusals = daemon.log().count("configuration reload refused")
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    while daemon.log().count("configuration reload refused") == refusals:
        assert daemon.proc.poll() is None and time.time() < deadline, "the broken configuration was not refused"
        time.sleep(0.05)
    assert daemon.proc.poll() is None
    assert sorted(r["name"] for r in daemon.api("GET", "/registry/routes").json()) == ["all", "filtered"]
    with open(daemon.config, "w") as f:
        json.dump(config, f)
    daemon.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 30
    while time.time() < deadline and "secure" not in [r["name"] for r in daemon.api("GET", "/registry/routes").json()]:
        time.sleep(0.05)
    device = daemon.registry.create_device_with_sas("tls-1", None, None, "enabled")
    keys = device.authentication.symmetric_key
    daemon.registry.update_device_with_sas("tls-1", device.etag, keys.primary_key, keys.secondary_key, "disabled")
    secure.wait_for(lambda: len(secure.ops()) >= 2, "the create and the disable over HTTPS")
    assert [o[:2] for o in secure.ops()] == [("createDeviceIdentity", "tls-1"), ("updateDeviceIdentity", "tls-1")]
    assert secure.messages[1]["body"]["status"] == "disabled"
    assert secure.bad_signatures == 0
