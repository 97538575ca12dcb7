"""Shared by the end-to-end suites: where the binary is, free ports, waiting for `serve`."""

import os
import socket
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("REGISTRYD", os.path.join(ROOT, ".build", "debug", "registryd"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(proc, data, port, timeout=60):
    """Polls /healthz over HTTPS with the daemon's CA until it answers; fails with its log."""
    ca = os.path.join(data, "tls", "ca.pem")
    deadline = time.time() + timeout
    while True:
        try:
            requests.get(f"https://localhost:{port}/healthz", verify=ca, timeout=2).raise_for_status()
            return ca
        except Exception:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("registryd did not start: " + open(os.path.join(data, "serve.log")).read())
            time.sleep(0.1)


def eventually(check, timeout=10, interval=0.05):
    """Calls `check` until it returns something true or `timeout` seconds pass; returns its last value."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value or time.time() > deadline:
            return value
        time.sleep(interval)
