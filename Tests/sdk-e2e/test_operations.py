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
