"""PostgreSQL nodes end to end (issue 19): real `registryd serve` processes on one database of a
PostgreSQL cluster this module starts (tools/postgres.sh), over HTTPS with SAS tokens.

- two nodes take writes at once: one gapless log, `audit verify` clean, each node reads the
  other's writes, an event stream on one carries both nodes' writes in log order, and a device
  disabled through one node is denied by the other's device auth;
- a node killed with SIGKILL under write load: every write it acknowledged is in the log and the
  other node keeps serving; with routes (a webhook and a file), the other node takes their
  leases over and delivers every acknowledged write, in order;
- one import/export job at a time across the nodes (a cancel taken by the other node reaches
  it), and no migration from a hub that nodes serve;
- the tools on a hub that a node serves: point-in-time replay (`replay --until`) and a policy
  rotated by `registryd policies` taking effect on the node;
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
from registryd_helpers import BINARY, ROOT, eventually, free_port, wait_until_serving
from webhook_receiver import SECRET, Receiver

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

    def __init__(self, url, key_from=None, config=None):
        self.url = url
        self.data = tempfile.mkdtemp(prefix="registryd-node-")
        extra = []
        if config is not None:
            path = os.path.join(self.data, "registryd.json")
            with open(path, "w") as f:
                json.dump(config, f)
            extra = ["--config", path]
        if key_from:
            shutil.copy(os.path.join(key_from.data, "data.key"), os.path.join(self.data, "data.key"))
            os.chmod(os.path.join(self.data, "data.key"), 0o600)
        self.port = free_port()
        self.log = open(os.path.join(self.data, "serve.log"), "w")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}", "--host-name", HOST, "--storage", url, *extra],
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



def create_load(node, prefix, through_errors=False):
    """Creates `{prefix}-0`, `{prefix}-1`, … on `node` from a thread until `stop` is set or the
    node goes away (or, `through_errors`, only until `stop`); answers (acknowledged ids, stop, thread)."""
    acknowledged = []
    stop = threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            try:
                r = node.request("PUT", f"/devices/{prefix}-{i}", json={"deviceId": f"{prefix}-{i}"})
                if r.status_code == 200:
                    acknowledged.append(f"{prefix}-{i}")
            except requests.RequestException:
                if not through_errors:
                    return
            i += 1

    writer = threading.Thread(target=load)
    writer.start()
    return acknowledged, stop, writer


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
        # An event stream on B, open before the writes (both nodes') begin.
        streamed = []
        stream = requests.get(f"{b.base}/registry/events?from=1&limit=150&{API}", headers={"Authorization": b.owner},
                              verify=b.ca, stream=True, timeout=60)
        assert stream.status_code == 200, stream.text

        def read_stream():
            event_id = None
            for line in stream.iter_lines(decode_unicode=True):
                if line.startswith("id: "):
                    event_id = line[4:]
                elif line.startswith("data: ") and event_id:
                    streamed.append((int(event_id.rsplit("-", 1)[1]), json.loads(line[6:])["applicationProperties"]["deviceId"]))

        reader = threading.Thread(target=read_stream)
        reader.start()
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

        # B's stream carried every write, A's included, in log order.
        reader.join(timeout=30)
        logged = [(e["seq"], e["deviceId"]) for e in map(json.loads, subprocess.check_output(
            [BINARY, "events", "--data-dir", a.data, "--storage", a.url]).decode().splitlines())]
        assert streamed == logged
        assert any(device.startswith("a") for _, device in streamed) and any(device.startswith("b") for _, device in streamed)

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
        acknowledged, stop, writer = create_load(a, "k")
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


def delivered_in_order(ops, what):
    """The seqs of first deliveries, checked increasing (redeliveries after a takeover allowed)."""
    seen, firsts = set(), []
    for seq, device in ops:
        if seq not in seen:
            seen.add(seq)
            firsts.append(seq)
    assert firsts == sorted(firsts), f"{what}: first deliveries out of order"
    return {device for _, device in ops}


def test_route_delivery_moves_to_the_other_node_when_its_holder_is_killed(cluster):
    receiver = Receiver()
    shared = tempfile.mkdtemp(prefix="registryd-pg-routes-")
    os.chmod(shared, 0o755)
    lines = os.path.join(shared, "lifecycle.jsonl")
    config = {
        "endpoints": [
            {"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{receiver.port}/events", "secret": SECRET, "timeoutMs": 2000},
            {"name": "file", "type": "file", "path": lines},
        ],
        "routes": [
            {"name": "hook", "source": "DeviceLifecycleEvents", "condition": "true", "endpointNames": ["hook"], "isEnabled": True},
            {"name": "file", "source": "DeviceLifecycleEvents", "condition": "true", "endpointNames": ["file"], "isEnabled": True},
        ],
        "delivery": {"initialBackoffMs": 20, "maxBackoffMs": 200, "retryWindowSeconds": 3600},
    }
    url = hub_url(cluster)
    a = Node(url, config=config)

    def file_ops():
        if not os.path.exists(lines):
            return []
        with open(lines) as f:
            return [(m["seq"], m["applicationProperties"]["deviceId"]) for m in map(json.loads, f.read().splitlines())]

    def hook_ops():
        return [(seq, device) for _, device, seq in receiver.ops()]

    try:
        # A, alone, takes both routes' leases and delivers.
        assert a.request("PUT", "/devices/first", json={"deviceId": "first"}).status_code == 200
        assert eventually(lambda: ("first" in {d for _, d in hook_ops()}) and ("first" in {d for _, d in file_ops()}), timeout=30)
        b = Node(url, key_from=a, config=config)
        acknowledged, stop, writer = create_load(a, "r")
        acknowledged.append("first")
        assert eventually(lambda: len(acknowledged) >= 30, timeout=30)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(timeout=10)
        stop.set()
        writer.join(timeout=30)
        try:
            assert b.request("PUT", "/devices/after-kill", json={"deviceId": "after-kill"}).status_code == 200
            expected = set(acknowledged) | {"after-kill"}
            # B takes the leases A's session held and continues from the persisted cursors.
            assert eventually(lambda: expected <= {d for _, d in hook_ops()}, timeout=60), sorted(expected - {d for _, d in hook_ops()})[:5]
            assert eventually(lambda: expected <= {d for _, d in file_ops()}, timeout=60), sorted(expected - {d for _, d in file_ops()})[:5]
            delivered_in_order(hook_ops(), "webhook")
            delivered_in_order(file_ops(), "file")
            assert receiver.bad_signatures == 0
            routes = {r["name"]: r for r in b.request("GET", "/registry/routes").json()}
            assert set(routes) == {"hook", "file"}
        finally:
            b.stop()
    finally:
        a.stop()
        receiver.server.shutdown()


def test_one_job_at_a_time_across_nodes_and_no_migration_from_a_served_hub(cluster, tmp_path):
    jobs = tmp_path / "jobs"
    (jobs / "out").mkdir(parents=True)
    config = {"jobs": {"roots": [str(jobs)]}}
    url = hub_url(cluster)
    a = Node(url, config=config)
    b = Node(url, key_from=a, config=config)
    try:
        body = {"type": "import", "inputBlobContainerUri": f"file://{jobs}", "inputBlobName": "devices.txt",
                "outputBlobContainerUri": f"file://{jobs}/out"}
        # An import long enough to be running while B is asked (it is cancelled at the end).
        with open(jobs / "devices.txt", "w") as f:
            for i in range(50000):
                f.write(json.dumps({"id": f"imp-{i}", "importMode": "create"}) + "\n")
        running = a.request("POST", "/jobs/create", json=body)
        assert running.status_code == 200, running.text
        job = running.json()["jobId"]
        refused = b.request("POST", "/jobs/create", json=body)
        assert refused.status_code == 403, refused.text
        assert "JobQuotaExceeded" in refused.json()["Message"]
        # A cancel taken by B reaches the node that runs the job.
        assert b.request("DELETE", f"/jobs/{job}").status_code == 200
        assert eventually(lambda: a.request("GET", f"/jobs/{job}").json()["status"] in ("cancelled", "completed"), timeout=60)
        # The lease went with the job: B may run one now.
        assert eventually(lambda: b.request("POST", "/jobs/create", json={"type": "export", "outputBlobContainerUri": f"file://{jobs}/out"}).status_code == 200, timeout=30)

        # While nodes serve the hub, a migration from it is refused (it is being written).
        target = tempfile.mkdtemp(prefix="registryd-pg-migrate-")
        shutil.rmtree(target)
        key = os.path.join(a.data, "data.key")
        refused = subprocess.run([BINARY, "migrate", "--from", url, "--to", target, "--data-key", key], capture_output=True, text=True)
        assert refused.returncode != 0
        assert "is serving hub" in refused.stderr + refused.stdout
        assert not os.path.exists(target) or os.listdir(target) == []
    finally:
        a.stop()
        b.stop()


def test_point_in_time_and_policy_tools_on_postgres(cluster, tmp_path):
    url = hub_url(cluster)
    node = Node(url)
    try:
        for i in range(5):
            assert node.request("PUT", f"/devices/p-{i}", json={"deviceId": f"p-{i}"}).status_code == 200
        # The registry as it was after seq 3, from the database (copied into a scratch LMDB
        # directory and exported), with the keys.
        at3 = tmp_path / "at3.jsonl"
        node.tool("replay", "--until", "3", "--out", str(at3))
        lines = [json.loads(line) for line in open(at3)]
        assert sorted(line["id"] for line in lines) == ["p-0", "p-1", "p-2"]
        assert all(line["authentication"]["symmetricKey"]["primaryKey"] for line in lines)
        directory = tmp_path / "at4"
        node.tool("replay", "--until", "4", "--out", str(directory), "--format", "dir")
        assert len(seqs_of_directory(directory)) == 4
        # A policy rotated by the tool while the node runs: the node refuses the old key within
        # its policy refresh, and a token made after it works.
        old = node.owner
        assert node.request("GET", "/devices/p-0", token=old).status_code == 200
        node.tool("policies", "rotate", "iothubowner")
        assert eventually(lambda: node.request("GET", "/devices/p-0", token=old).status_code == 401, timeout=5)
        assert node.request("GET", "/devices/p-0", token=node.tool("sas-token", "--host-name", HOST)).status_code == 200
        listed = node.tool("policies", "list")
        assert "iothubowner\t" in listed and "device\t" in listed
    finally:
        node.stop()


def seqs_of_directory(directory):
    out = subprocess.check_output([BINARY, "events", "--data-dir", str(directory)]).decode()
    return [json.loads(line)["seq"] for line in out.splitlines()]


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
        # Through the outage: a refused or failed request is tried with the next id.
        acknowledged, stop, writer = create_load(node, "f", through_errors=True)
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
