"""Issue 17: what a caller sends cannot stop the daemon. Connection timeouts and caps, the
header-size limit, and event streams that stay bounded, against a real `registryd serve` over
real TLS sockets (a slow or silent peer is something only a socket can be)."""

import json
import os
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
import requests
from registryd_helpers import BINARY, free_port, wait_until_serving


def start(config):
    data = tempfile.mkdtemp(prefix="registryd-hardening-")
    port = free_port()
    path = os.path.join(data, "registryd.json")
    with open(path, "w") as f:
        json.dump(config, f)
    proc = subprocess.Popen(
        [BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--config", path],
        stdout=open(os.path.join(data, "serve.log"), "w"), stderr=subprocess.STDOUT,
    )
    ca = wait_until_serving(proc, data, port)
    return proc, data, port, ca


def stop(proc):
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def token(data, policy="iothubowner"):
    return subprocess.check_output([BINARY, "sas-token", "--data-dir", data, "--policy", policy]).decode().strip()


def tls_socket(port, ca, rcvbuf=None):
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.connect(("127.0.0.1", port))
    context = ssl.create_default_context(cafile=ca)
    return context.wrap_socket(raw, server_hostname="localhost")


def closed_by_server(sock, within):
    """True when the server closes the connection within `within` seconds (reading whatever it
    still sends), False when it is still open then."""
    deadline = time.time() + within
    while time.time() < deadline:
        sock.settimeout(max(0.05, deadline - time.time()))
        try:
            if sock.recv(65536) == b"":
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            return True
    return False


def read_response(sock, timeout=10):
    """One HTTP/1.1 response with a Content-Length body, however the reads split it."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before the response"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside the body"
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def short_timeouts():
    proc, data, port, ca = start({
        "connections": {"headerTimeoutSeconds": 1, "bodyTimeoutSeconds": 1, "idleTimeoutSeconds": 2, "tlsHandshakeTimeoutSeconds": 1},
    })
    yield data, port, ca
    stop(proc)


def test_a_header_block_sent_a_byte_at_a_time_is_cut_off(short_timeouts):
    data, port, ca = short_timeouts
    sock = tls_socket(port, ca)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
    # Dribbling bytes does not restart the header timer.
    start_time = time.time()
    closed = False
    while time.time() - start_time < 10:
        try:
            sock.sendall(b"X")
        except OSError:
            closed = True
            break
        if closed_by_server(sock, 0.3):
            closed = True
            break
    assert closed, "a slowloris header held the connection for 10 s"
    assert time.time() - start_time < 8


def test_a_body_that_never_arrives_is_cut_off(short_timeouts):
    data, port, ca = short_timeouts
    sock = tls_socket(port, ca)
    sock.sendall(b"PUT /devices/slow HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Authorization: " + token(data).encode() + b"\r\nContent-Length: 100\r\n\r\n{")
    assert closed_by_server(sock, 10)
    owner = requests.get(f"https://localhost:{port}/devices/slow", verify=ca, headers={"Authorization": token(data)})
    assert owner.status_code == 404, "a cut-off request writes nothing"


def test_a_silent_peer_never_finishing_tls_is_cut_off(short_timeouts):
    data, port, ca = short_timeouts
    raw = socket.create_connection(("127.0.0.1", port))
    assert closed_by_server(raw, 10)


def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(short_timeouts):
    data, port, ca = short_timeouts
    sock = tls_socket(port, ca)
    for _ in range(3):
        # Requests 0.5 s apart keep it open past the 2 s idle timeout...
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(0.5)
    # ...and silence closes it.
    assert closed_by_server(sock, 10)


def test_request_headers_over_32_kib_answer_431_in_the_azure_format(short_timeouts):
    data, port, ca = short_timeouts
    url = f"https://localhost:{port}/devices/any"
    ok = requests.get(url, verify=ca, headers={"Authorization": token(data), "X-Pad": "a" * 20_000})
    assert ok.status_code == 404
    for size in [40_000, 60_000]:
        big = requests.get(url, verify=ca, headers={"Authorization": token(data), "X-Pad": "a" * size})
        assert big.status_code == 431, size
        assert big.headers["iothub-errorcode"] == "RequestHeaderFieldsTooLarge"
        assert big.json()["Message"].startswith("ErrorCode:RequestHeaderFieldsTooLarge;")
    # Past the decoder's own limit the guard answers, in the same format, and closes.
    huge = requests.get(url, verify=ca, headers={"X-Pad": "a" * 100_000})
    assert huge.status_code == 431
    assert huge.json()["Message"].startswith("ErrorCode:RequestHeaderFieldsTooLarge;")
    # The daemon is still serving.
    assert requests.get(f"https://localhost:{port}/healthz", verify=ca).status_code == 200


def test_connections_over_the_cap_wait_until_one_closes():
    proc, data, port, ca = start({"connections": {"maxConnections": 4, "idleTimeoutSeconds": 60}})
    try:
        held = [tls_socket(port, ca) for _ in range(4)]
        # The fifth is accepted by the kernel but not served: its handshake does not finish.
        raw = socket.create_connection(("127.0.0.1", port))
        raw.settimeout(1.5)
        context = ssl.create_default_context(cafile=ca)
        with pytest.raises((socket.timeout, ssl.SSLError, TimeoutError)):
            context.wrap_socket(raw, server_hostname="localhost")
        raw.close()
        held.pop().close()
        # A slot is free again: a new connection is served.
        time.sleep(0.2)
        assert requests.get(f"https://localhost:{port}/healthz", verify=ca, timeout=10).status_code == 200
        for s in held:
            s.close()
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def streams():
    proc, data, port, ca = start({"eventStreams": {"maxPerPolicy": 2, "stallTimeoutSeconds": 1}})
    owner = token(data)
    session = requests.Session()
    session.verify = ca
    session.trust_env = False  # else REQUESTS_CA_BUNDLE would override `verify`
    # Enough events that the stream cannot fit in the socket buffers of both ends.
    for batch in range(60):
        devices = [{"id": f"d{batch:03}-{i:03}", "importMode": "create", "tags": {"pad": "x" * 400}} for i in range(100)]
        r = session.post(f"https://localhost:{port}/devices?api-version=2021-04-12", json=devices, headers={"Authorization": owner})
        assert r.status_code == 200, r.text
    yield data, port, ca
    stop(proc)


def open_stream(port, ca, service, query, rcvbuf=None, last_event_id=None):
    sock = tls_socket(port, ca, rcvbuf=rcvbuf)
    extra = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
    sock.sendall(f"GET /registry/events?{query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nAuthorization: {service}\r\n{extra}\r\n".encode())
    return sock


def read_all(sock, timeout=30):
    chunks = []
    sock.settimeout(timeout)
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_a_stream_whose_client_stops_reading_is_closed_and_resumes(streams):
    data, port, ca = streams
    service = token(data, "service")
    sock = open_stream(port, ca, service, "from=1", rcvbuf=4096)
    # The client reads nothing. The daemon must not pull the whole log into memory for it: it
    # waits, and after the stall timeout closes the stream.
    time.sleep(4)
    text = read_all(sock)  # what the buffers held, then the end: no hang
    ids = [line[4:] for line in text.split("\n") if line.startswith("id: ")]
    assert 0 < len(ids) < 6000, len(ids)
    # Resume after the last complete message: the next ones follow without a gap.
    complete = text.rsplit("\n\n", 1)[0]
    last = [line[4:] for line in complete.split("\n") if line.startswith("id: ")][-1]
    resumed = open_stream(port, ca, service, "limit=3", last_event_id=last)
    following = [line[4:] for line in read_all(resumed).split("\n") if line.startswith("id: ")]
    seq = int(last.rsplit("-", 1)[1])
    assert [int(i.rsplit("-", 1)[1]) for i in following] == [seq + 1, seq + 2, seq + 3]


def test_each_policy_holds_a_bounded_number_of_streams(streams):
    data, port, ca = streams
    # The owner policy here: the test before used `service`, and a stream's slot is freed just
    # after its connection closes, so its last slot may still be held for a moment.
    capped, other_policy = token(data), token(data, "service")
    url = f"https://localhost:{port}/registry/events"
    first = open_stream(port, ca, capped, "")
    second = open_stream(port, ca, capped, "")
    for s in [first, second]:
        s.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200")
    refused = requests.get(url, verify=ca, headers={"Authorization": capped}, timeout=10)
    assert refused.status_code == 429
    assert refused.headers["iothub-errorcode"] == "ThrottlingException"
    assert "maxPerPolicy" in refused.json()["Message"]
    # Another policy has its own budget.
    other = requests.get(url + "?from=1&limit=1", verify=ca, headers={"Authorization": other_policy}, timeout=10)
    assert other.status_code == 200
    first.close()
    deadline = time.time() + 10
    while True:
        again = requests.get(url + "?from=1&limit=1", verify=ca, headers={"Authorization": capped}, timeout=10)
        if again.status_code == 200 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert again.status_code == 200
    second.close()
