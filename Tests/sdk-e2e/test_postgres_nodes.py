"""PostgreSQL nodes end to end (issue 19): real `registryd serve` processes on one database of a
PostgreSQL cluster this module starts (tools/postgres.sh), over HTTPS with SAS tokens.

- two nodes take writes at once: one gapless log, `audit verify` clean, each node reads the
  other's writes, and a device disabled through one node is denied by the other's device auth;
- a node killed with SIGKILL under write load: every write it acknowledged is in the log and the
  other node keeps serving;
- the database stopped and started under a running node: 503 with Retry-After while it is down,
  /readyz false, device authentication still answering from the node-local projection, and
  recovery without a restart.
"""

import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
import uuid

import pytest
import requests
from registryd_helpers import BINARY, ROOT, free_port, wait_until_serving

API = "api-version=2021-04-12"
HOST = "registry.test"
POSTGRES = os.path.join(ROOT, "tools", "postgres.sh")


@pytest.fixture(scope="module")
def cluster():
    directory = tempfile.mkdtemp(prefix="registryd-pg-e2e-")
    shutil.rmtree(directory)
    url = subprocess.check_output([POSTGRES, "start", directory, str(free_port())]).decode().strip()
    yield {"dir": directory, "url": url}
    subprocess.run([POSTGRES, "stop", directory], check=False)


def hub_url(cluster):
    return cluster["url"] + "?hub=e2e-" + uuid.uuid4().hex[:8]


class Node:
    """One `registryd serve` on `url`; `key_from` copies another node's data key (every node of a hub has the same)."""

    def __init__(self, url, key_from=None):
        self.url = url
        self.data = tempfile.mkdtemp(prefix="registryd-node-")
        if key_from:
            shutil.copy(os.path.join(key_from.data, "data.key"), os.path.join(self.data, "data.key"))
            os.chmod(os.path.join(self.data, "data.key"), 0o600)
        self.port = free_port()
        self.log = open(os.path.join(self.data, "serve.log"), "w")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}", "--host-name", HOST, "--storage", url],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ca = wait_until_serving(self.proc, self.data, self.port)
        self.base = f"https://localhost:{self.port}"
        self.owner = self.tool("sas-token", "--host-name", HOST)
        self.broker = self.tool("sas-token", "--host-name", HOST, "--policy", "device")

    def tool(self, *args):
        return subprocess.check_output([BINARY, *args, "--data-dir", self.data, "--storage", self.url]).decode().strip()

    def request(self, method, path, token=None, if_match=None, **kwargs):
        headers = {"Authorization": token or self.owner}
        if if_match:
            headers["If-Match"] = if_match
        sep = "&" if "?" in path else "?"
        return requests.request(method, f"{self.base}{path}{sep}{API}", headers=headers, verify=self.ca, timeout=30, **kwargs)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def device_token(device_id, key, ttl=3600):
    sr = urllib.parse.quote(f"{HOST}/devices/{device_id}", safe="")
    expiry = int(time.time()) + ttl
    signature = base64.b64encode(hmac.new(base64.b64decode(key), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()).decode()
    return f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(signature, safe='')}&se={expiry}"


def auth(node, device_id, token):
    r = requests.post(
        f"{node.base}/registry/auth/device",
        json={"deviceId": device_id, "token": token},
        headers={"Authorization": node.broker},
        verify=node.ca,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def eventually(check, timeout=10):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(0.05)


def verify(node):
    result = subprocess.run(
        [BINARY, "audit", "verify", "--data-dir", node.data, "--storage", node.url], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def seqs(node):
    out = subprocess.check_output([BINARY, "events", "--data-dir", node.data, "--storage", node.url]).decode()
    return [json.loads(line)["seq"] for line in out.splitlines()]


def test_two_nodes_share_one_registry(cluster):
    url = hub_url(cluster)
    a = Node(url)
    b = Node(url, key_from=a)
    try:
        failures = []

        def create(node, prefix):
            for i in range(25):
                r = node.request("PUT", f"/devices/{prefix}-{i}", json={"deviceId": f"{prefix}-{i}"})
                if r.status_code != 200:
                    failures.append(r.text)

        threads = [threading.Thread(target=create, args=(node, f"{name}{t}")) for node, name in ((a, "a"), (b, "b")) for t in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert seqs(a) == list(range(1, 151)), "one gapless log across both nodes"
        assert "result: projections equal the replay" in verify(b)

        # Each node reads the other's writes at once (reads go to the database).
        made_on_a = a.request("GET", "/devices/a0-7").json()
        assert b.request("GET", "/devices/a0-7").json()["etag"] == made_on_a["etag"]
        stats = b.request("GET", "/statistics/devices").json()
        assert stats["totalDeviceCount"] == 150

        # A device disabled through A is denied by B's device authentication (node-local projection).
        key = made_on_a["authentication"]["symmetricKey"]["primaryKey"]
        token = device_token("a0-7", key)
        assert auth(b, "a0-7", token)["result"] == "allow"
        made_on_a["status"] = "disabled"
        r = a.request("PUT", "/devices/a0-7", json=made_on_a, if_match="*")
        assert r.status_code == 200, r.text
        assert eventually(lambda: auth(b, "a0-7", token) == {"result": "deny", "reason": "disabled"}, timeout=5)

        # A policy key rotated through A stops working on B within its policy refresh (1 s).
        old = b.owner
        assert b.request("GET", "/devices/a0-1", token=old).status_code == 200
        r = a.request("POST", "/registry/policies/iothubowner/rotate", json={"key": "primary"})
        assert r.status_code == 200, r.text
        assert eventually(lambda: b.request("GET", "/devices/a0-1", token=old).status_code == 401, timeout=5)
        fresh = b.tool("sas-token", "--host-name", HOST)
        assert b.request("GET", "/devices/a0-1", token=fresh).status_code == 200
    finally:
        a.stop()
        b.stop()


def test_a_node_killed_under_load_loses_no_acknowledged_write(cluster):
    url = hub_url(cluster)
    a = Node(url)
    b = Node(url, key_from=a)
    try:
        acknowledged = []
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                try:
                    r = a.request("PUT", f"/devices/k-{i}", json={"deviceId": f"k-{i}"})
                except requests.RequestException:
                    return
                if r.status_code == 200:
                    acknowledged.append(f"k-{i}")
                i += 1

        writer = threading.Thread(target=load)
        writer.start()
        assert eventually(lambda: len(acknowledged) >= 30, timeout=30)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        stop.set()
        writer.join(timeout=30)
        # B keeps serving, and every write A acknowledged is there.
        for device_id in acknowledged:
            assert b.request("GET", f"/devices/{device_id}").status_code == 200, device_id
        assert b.request("PUT", "/devices/after-kill", json={"deviceId": "after-kill"}).status_code == 200
        log = seqs(b)
        assert log == list(range(1, len(log) + 1))
        verify(b)
    finally:
        a.stop()
        b.stop()


def test_a_database_outage_answers_503_keeps_device_auth_and_recovers(cluster):
    node = Node(hub_url(cluster))
    try:
        made = node.request("PUT", "/devices/sensor", json={"deviceId": "sensor"}).json()
        token = device_token("sensor", made["authentication"]["symmetricKey"]["primaryKey"])
        subprocess.run([POSTGRES, "down", cluster["dir"]], check=True)
        try:
            r = node.request("PUT", "/devices/during", json={"deviceId": "during"})
            assert r.status_code == 503, r.text
            assert r.json()["Message"].startswith("ErrorCode:ServiceUnavailable")
            assert int(r.headers["Retry-After"]) >= 1
            assert node.request("GET", "/devices/sensor").status_code == 503
            assert requests.get(f"{node.base}/readyz", verify=node.ca, timeout=30).status_code == 503
            # Brokers keep admitting valid devices while the database is away.
            assert auth(node, "sensor", token)["result"] == "allow"
        finally:
            subprocess.run([POSTGRES, "up", cluster["dir"]], check=True)
        # Back without a restart.
        assert eventually(lambda: node.request("PUT", "/devices/after", json={"deviceId": "after"}).status_code == 200, timeout=60)
        assert eventually(lambda: requests.get(f"{node.base}/readyz", verify=node.ca, timeout=30).status_code == 200, timeout=30)
        assert node.request("GET", "/devices/during").status_code == 404, "the write refused during the outage left nothing"
        verify(node)
    finally:
        node.stop()


def test_failover_to_a_synchronous_standby_loses_no_acknowledged_write():
    """A primary with a synchronous streaming standby; the primary dies under write load, the standby is
    promoted and takes over the primary's address (what Patroni's virtual IP or proxy does): every write
    registryd acknowledged is on the new primary, the node reconnects by itself, device auth kept answering."""
    primary, standby = tempfile.mkdtemp(prefix="registryd-pg-primary-"), tempfile.mkdtemp(prefix="registryd-pg-standby-")
    shutil.rmtree(primary)
    shutil.rmtree(standby)
    port = free_port()
    url = subprocess.check_output([POSTGRES, "start", primary, str(port)]).decode().strip()
    node = None
    try:
        subprocess.run([POSTGRES, "standby", primary, standby, str(free_port())], check=True)
        node = Node(url + "?hub=failover")
        made = node.request("PUT", "/devices/sensor", json={"deviceId": "sensor"}).json()
        token = device_token("sensor", made["authentication"]["symmetricKey"]["primaryKey"])
        acknowledged = []
        stop = threading.Event()

        def load():
            i = 0
            while not stop.is_set():
                try:
                    r = node.request("PUT", f"/devices/f-{i}", json={"deviceId": f"f-{i}"})
                    if r.status_code == 200:
                        acknowledged.append(f"f-{i}")
                except requests.RequestException:
                    pass
                i += 1

        writer = threading.Thread(target=load)
        writer.start()
        try:
            assert eventually(lambda: len(acknowledged) >= 30, timeout=30)
            subprocess.run([POSTGRES, "crash", primary], check=True)
            # No database at all: brokers still get answers for valid devices.
            assert auth(node, "sensor", token)["result"] == "allow"
            subprocess.run([POSTGRES, "promote", standby, str(port)], check=True)
            # The node reconnects by itself: new writes succeed again.
            count = len(acknowledged)
            assert eventually(lambda: len(acknowledged) > count + 10, timeout=60), "writes resumed on the promoted standby"
        finally:
            stop.set()
            writer.join(timeout=60)
        missing = [d for d in acknowledged if node.request("GET", f"/devices/{d}").status_code != 200]
        assert missing == [], f"acknowledged writes lost in the failover: {missing}"
        verify(node)
        assert auth(node, "sensor", token)["result"] == "allow"
    finally:
        if node:
            node.stop()
        subprocess.run([POSTGRES, "stop", primary], check=False)
        subprocess.run([POSTGRES, "stop", standby], check=False)


def test_migrate_a_data_directory_to_postgres_and_back(cluster):
    """`registryd migrate` both ways: the moved registry keeps its devices, keys, policies (so its
    connection strings) and its log; a daemon's directory and a non-empty destination are refused."""
    data = tempfile.mkdtemp(prefix="registryd-migrate-")
    port = free_port()
    log = open(os.path.join(data, "serve.log"), "w")
    proc = subprocess.Popen([BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--host-name", HOST], stdout=log, stderr=subprocess.STDOUT)
    try:
        ca = wait_until_serving(proc, data, port)
        owner = subprocess.check_output([BINARY, "sas-token", "--data-dir", data, "--host-name", HOST]).decode().strip()
        for i in range(5):
            r = requests.put(f"https://localhost:{port}/devices/m{i}?{API}", json={"deviceId": f"m{i}"}, headers={"Authorization": owner}, verify=ca, timeout=30)
            assert r.status_code == 200, r.text
        url = hub_url(cluster)
        busy = subprocess.run([BINARY, "migrate", "--from", data, "--to", url], capture_output=True, text=True)
        assert busy.returncode != 0 and "in use by a running registryd" in busy.stderr, busy.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    moved = subprocess.run([BINARY, "migrate", "--from", data, "--to", url], capture_output=True, text=True)
    assert moved.returncode == 0, moved.stderr
    assert "migrated 5 events" in moved.stdout
    again = subprocess.run([BINARY, "migrate", "--from", data, "--to", url], capture_output=True, text=True)
    assert again.returncode != 0 and "not empty" in again.stderr
    # A node on PostgreSQL with the moved registry answers the old connection string.
    node_data = tempfile.mkdtemp(prefix="registryd-node-")
    shutil.copy(os.path.join(data, "data.key"), os.path.join(node_data, "data.key"))
    node_port = free_port()
    node = subprocess.Popen(
        [BINARY, "serve", "--data-dir", node_data, "--listen", f"127.0.0.1:{node_port}", "--host-name", HOST, "--storage", url],
        stdout=open(os.path.join(node_data, "serve.log"), "w"),
        stderr=subprocess.STDOUT,
    )
    try:
        node_ca = wait_until_serving(node, node_data, node_port)
        r = requests.get(f"https://localhost:{node_port}/devices/m3?{API}", headers={"Authorization": owner}, verify=node_ca, timeout=30)
        assert r.status_code == 200 and r.json()["deviceId"] == "m3", r.text
    finally:
        node.terminate()
        node.wait(timeout=30)
    back = os.path.join(tempfile.mkdtemp(prefix="registryd-back-"), "data")
    returned = subprocess.run(
        [BINARY, "migrate", "--from", url, "--to", back, "--data-key", os.path.join(data, "data.key")], capture_output=True, text=True
    )
    assert returned.returncode == 0, returned.stderr
    original = subprocess.check_output([BINARY, "events", "--data-dir", data])
    assert subprocess.check_output([BINARY, "events", "--data-dir", back]) == original, "the same log bytes after the round trip"
    verified = subprocess.run([BINARY, "audit", "verify", "--data-dir", back], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stdout + verified.stderr
