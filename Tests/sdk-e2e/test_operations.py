"""Operating registryd: systemd notifications (READY/WATCHDOG/STOPPING over $NOTIFY_SOCKET),
health probes, and a graceful SIGTERM that lets an in-flight request finish."""

import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
import requests
from registryd_helpers import BINARY, free_port


def receive(sock, timeout=30):
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def test_systemd_notify_watchdog_and_graceful_stop():
    data = tempfile.mkdtemp(prefix="registryd-systemd-")
    notify_path = os.path.join(data, "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    port = free_port()
    env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="400000")
    log = open(os.path.join(data, "serve.log"), "w")
    proc = subprocess.Popen([BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        # READY=1 arrives only once the port accepts connections: connect right after it.
        messages = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(receive(notify))
        ready = next(m for m in messages if m.startswith("READY=1"))
        assert "STATUS=serving" in ready
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

        # Watchdog pings at half of WATCHDOG_USEC while healthy.
        pings = 0
        deadline = time.time() + 20
        while pings < 3 and time.time() < deadline:
            if receive(notify) == "WATCHDOG=1":
                pings += 1
        assert pings == 3

        ca = os.path.join(data, "tls", "ca.pem")
        session = requests.Session()
        session.trust_env = False
        ready_probe = session.get(f"https://localhost:{port}/readyz", verify=ca)
        assert ready_probe.status_code == 200
        assert ready_probe.json() == {"status": "ready", "checks": {"listening": True, "storage": True, "writer": True}}
        token = subprocess.check_output([BINARY, "sas-token", "--data-dir", data]).decode().strip()

        # An in-flight request: its head and half of its body are sent before SIGTERM.
        context = ssl.create_default_context(cafile=ca)
        raw = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        body = json.dumps({"deviceId": "inflight", "status": "enabled"}).encode()
        head = (
            f"PUT /devices/inflight?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost:{port}\r\n"
            f"Authorization: {token}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        raw.sendall(head + body[:10])
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        # STOPPING=1 goes out as soon as the shutdown begins (watchdog pings may precede it).
        while True:
            message = receive(notify)
            if message.startswith("STOPPING=1"):
                break
            assert message == "WATCHDOG=1", message
        # The request still completes, whole.
        raw.sendall(body[10:])
        response = b""
        raw.settimeout(30)
        while b"\r\n\r\n" not in response:
            chunk = raw.recv(65536)
            assert chunk, "connection cut before the response"
            response += chunk
        header, _, rest = response.partition(b"\r\n\r\n")
        assert header.startswith(b"HTTP/1.1 200"), header
        length = int(next(line.split(b":")[1] for line in header.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            chunk = raw.recv(65536)
            assert chunk, "response cut short"
            rest += chunk
        assert json.loads(rest)["deviceId"] == "inflight"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    # The acknowledged create is in the log, and the log verifies.
    history = subprocess.run([BINARY, "history", "--data-dir", data, "inflight"], capture_output=True, text=True)
    assert history.returncode == 0 and "deviceCreated" in history.stdout, history.stdout + history.stderr
    verify = subprocess.run([BINARY, "audit", "verify", "--data-dir", data], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout


def test_metrics_parse_as_prometheus_text_and_logs_hold_no_secrets():
    from prometheus_client.parser import text_string_to_metric_families

    data = tempfile.mkdtemp(prefix="registryd-metrics-")
    port = free_port()
    log_path = os.path.join(data, "serve.log")
    config = os.path.join(data, "registryd.json")
    with open(config, "w") as f:
        json.dump({
            "endpoints": [{"name": "audit", "type": "file", "path": os.path.join(data, "lifecycle.jsonl")}],
            "routes": [{"name": "audit", "source": "DeviceLifecycleEvents", "condition": "true", "endpointNames": ["audit"]}],
        }, f)
    proc = subprocess.Popen(
        [BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--log-level", "trace", "--config", config],
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
    )
    try:
        from registryd_helpers import wait_until_serving

        ca = wait_until_serving(proc, data, port)
        http = requests.Session()
        http.verify = ca
        http.trust_env = False
        url = f"https://localhost:{port}"
        owner = subprocess.check_output([BINARY, "sas-token", "--data-dir", data]).decode().strip()
        reader = subprocess.check_output([BINARY, "sas-token", "--data-dir", data, "--policy", "registryRead"]).decode().strip()
        broker = subprocess.check_output([BINARY, "sas-token", "--data-dir", data, "--policy", "device"]).decode().strip()
        policy_keys = [
            subprocess.check_output([BINARY, "connection-string", "--data-dir", data, "--policy", p]).decode().strip().split("SharedAccessKey=")[1]
            for p in ["iothubowner", "service", "registryRead", "registryReadWrite", "device"]
        ]

        def requests_total(text, operation, status):
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "registryd_http_requests_total" and sample.labels == {"operation": operation, "status": status}:
                        return sample.value
            return 0

        assert http.get(url + "/metrics").status_code == 401, "RegistryRead is needed by default"
        before = http.get(url + "/metrics", headers={"Authorization": reader})
        assert before.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(before.text)}
        assert families["registryd_lmdb_map_size_bytes"].samples[0].value > 0
        assert "registryd_writer_commit_seconds" in families and families["registryd_writer_commit_seconds"].type == "histogram"

        device = http.put(url + "/devices/metered", json={}, headers={"Authorization": owner}).json()
        key = device["authentication"]["symmetricKey"]["primaryKey"]
        secondary = device["authentication"]["symmetricKey"]["secondaryKey"]
        import base64, hashlib, hmac, time, urllib.parse

        se = str(int(time.time()) + 600)
        sr = urllib.parse.quote(f"localhost:{port}/devices/metered", safe="")
        sig = base64.b64encode(hmac.new(base64.b64decode(key), f"{sr}\n{se}".encode(), hashlib.sha256).digest()).decode()
        device_token = f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(sig, safe='')}&se={se}"
        check = http.post(url + "/registry/auth/device", json={"deviceId": "metered", "token": device_token}, headers={"Authorization": broker})
        assert check.json()["result"] == "allow"
        http.put(url + "/devices/metered2", json={}, headers={"Authorization": owner})
        http.get(url + "/devices/metered", headers={"Authorization": "SharedAccessSignature sr=x&sig=bad&se=1"})

        after = http.get(url + "/metrics", headers={"Authorization": reader}).text
        assert requests_total(after, "PUT /devices/{deviceId}", "200") == requests_total(before.text, "PUT /devices/{deviceId}", "200") + 2
        assert requests_total(after, "POST /registry/auth/device", "200") == 1
        assert requests_total(after, "GET /devices/{deviceId}", "401") == 1
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(after) for s in f.samples}
        assert samples[("registryd_events_appended_total", ())] >= 2
        assert samples[("registryd_identities", (("kind", "device"), ("status", "enabled")))] == 2
        # The route's delivery shows in metrics once the file endpoint has the two creates.
        deadline = time.time() + 20
        while True:
            text = http.get(url + "/metrics", headers={"Authorization": reader}).text
            route = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}
            if route.get(("registryd_route_delivered_messages", (("route", "audit"),)), 0) >= 2 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert route[("registryd_route_delivered_messages", (("route", "audit"),))] == 2
        assert route[("registryd_route_lag_events", (("route", "audit"),))] == 0
        assert route[("registryd_route_health", (("health", "healthy"), ("route", "audit")))] == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    log = open(log_path).read()
    assert "request.id=" in log and "operation=PUT /devices/{deviceId}" in log
    # No key, token or signature in any line, even at trace level.
    for secret in policy_keys + [key, secondary, sig, urllib.parse.quote(sig, safe=""), owner, reader, broker, device_token]:
        assert secret not in log
    for token in [owner, reader, broker]:
        assert token.split("sig=")[1].split("&")[0] not in log


def make_certificate(directory, name, common_name):
    cert, key = os.path.join(directory, name + ".pem"), os.path.join(directory, name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
         "-subj", f"/CN={common_name}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True, capture_output=True,
    )
    return cert, key


def served_certificate(port):
    import hashlib

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port)) as raw, context.wrap_socket(raw, server_hostname="localhost") as tls:
        return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def test_sighup_reloads_the_tls_certificate_without_dropping_connections():
    import http.client
    import shutil

    data = tempfile.mkdtemp(prefix="registryd-tls-")
    first_cert, first_key = make_certificate(data, "first", "first")
    second_cert, second_key = make_certificate(data, "second", "second")
    live_cert, live_key = os.path.join(data, "live.pem"), os.path.join(data, "live.key")
    shutil.copy(first_cert, live_cert)
    shutil.copy(first_key, live_key)
    port = free_port()
    proc = subprocess.Popen(
        [BINARY, "serve", "--data-dir", os.path.join(data, "d"), "--listen", f"127.0.0.1:{port}", "--tls-cert", live_cert, "--tls-key", live_key],
        stdout=open(os.path.join(data, "serve.log"), "w"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                before = served_certificate(port)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, open(os.path.join(data, "serve.log")).read()
                time.sleep(0.1)
        context = ssl.create_default_context(cafile=first_cert)
        kept = http.client.HTTPSConnection("localhost", port, context=context)
        kept.request("GET", "/healthz")
        first = kept.getresponse()
        assert first.status == 200
        first.read()  # the whole response, so the connection can carry the next request

        # A new pair in place, then SIGHUP: new handshakes present it.
        shutil.copy(second_cert, live_cert)
        shutil.copy(second_key, live_key)
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while served_certificate(port) == before:
            assert time.time() < deadline, "the certificate was not reloaded"
            time.sleep(0.1)
        new_context = ssl.create_default_context(cafile=second_cert)
        fresh = http.client.HTTPSConnection("localhost", port, context=new_context)
        fresh.request("GET", "/healthz")
        assert fresh.getresponse().status == 200
        # The connection opened before the reload still works.
        kept.request("GET", "/readyz")
        assert kept.getresponse().status == 200

        # A broken pair is refused and the running one stays.
        with open(live_cert, "w") as f:
            f.write("not a certificate")
        proc.send_signal(signal.SIGHUP)
        # Its log line says the daemon has handled this SIGHUP (refused the pair): only then is
        # "the running certificate stays" a finding rather than a guess at timing.
        deadline = time.time() + 20
        while "TLS certificate reload refused" not in open(os.path.join(data, "serve.log")).read():
            assert proc.poll() is None and time.time() < deadline, "the broken pair was not refused"
            time.sleep(0.1)
        assert proc.poll() is None
        check = http.client.HTTPSConnection("localhost", port, context=ssl.create_default_context(cafile=second_cert))
        check.request("GET", "/healthz")
        assert check.getresponse().status == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert "TLS certificate reload refused" in open(os.path.join(data, "serve.log")).read()


def test_a_full_disk_refuses_writes_with_503_and_recovers_by_itself():
    """A real full filesystem: a 16 MB tmpfs holds the data directory and a filler file."""
    mount = tempfile.mkdtemp(prefix="registryd-fulldisk-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mount], capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs privileges this machine does not give")
    proc = None
    try:
        data = os.path.join(mount, "data")
        port = free_port()
        log_path = os.path.join(tempfile.mkdtemp(), "serve.log")
        proc = subprocess.Popen([BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}"], stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
        from registryd_helpers import wait_until_serving

        ca = wait_until_serving(proc, data, port)
        http = requests.Session()
        http.verify = ca
        http.trust_env = False
        url = f"https://localhost:{port}"
        owner = subprocess.check_output([BINARY, "sas-token", "--data-dir", data]).decode().strip()
        assert http.put(url + "/devices/before", json={}, headers={"Authorization": owner}).status_code == 200

        # Fill the filesystem.
        filler = os.path.join(mount, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        statuses = []
        for i in range(400):
            r = http.put(url + f"/devices/full-{i}", json={"statusReason": "x" * 100}, headers={"Authorization": owner})
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert r.headers["iothub-errorcode"] == "ServiceUnavailable"
                assert "storage is full" in r.json()["Message"]
                break
        assert statuses[-1] == 503, statuses[-5:]
        ready = http.get(url + "/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["storage"] is False
        assert http.get(url + "/healthz").status_code == 200
        assert http.get(url + "/devices/before", headers={"Authorization": owner}).status_code == 200, "reads go on"

        # Space returns: the daemon notices by itself (probe writes), then takes writes again.
        os.remove(filler)
        deadline = time.time() + 30
        while http.get(url + "/readyz").status_code != 200:
            assert time.time() < deadline, "did not recover"
            time.sleep(0.2)
        assert http.put(url + "/devices/after", json={}, headers={"Authorization": owner}).status_code == 200
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        proc = None
        verify = subprocess.run([BINARY, "audit", "verify", "--data-dir", data], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout
        log = open(log_path).read()
        assert "storage full" in log and "writes resume" in log
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        subprocess.run(["umount", mount], capture_output=True)
