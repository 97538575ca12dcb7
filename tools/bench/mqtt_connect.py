"""MQTT connect rate through a broker (tools/bench-broker.sh; by hand): PROCESSES processes, each
connecting over TLS, waiting for CONNACK and disconnecting, again and again for SECONDS, as the
devices of a token file (one `device_id token` per line; none for an anonymous broker) in turn.
Prints `connects refused seconds`. Run with the device venv's Python (paho-mqtt).

    mqtt_connect.py HOST PORT CA HUB SECONDS PROCESSES [TOKENS]
"""

import multiprocessing
import sys
import threading
import time

import paho.mqtt.client as mqtt


def worker(args):
    host, port, ca, hub, seconds, index, tokens = args
    connects = refused = 0
    deadline = time.time() + seconds
    i = index
    while time.time() < deadline:
        done = threading.Event()
        result = {}
        device = tokens[i % len(tokens)] if tokens else None
        i += 1
        client = mqtt.Client(client_id=device[0] if device else f"anon-{index}-{i}", protocol=mqtt.MQTTv311, clean_session=True)
        if device:
            client.username_pw_set(f"{hub}/{device[0]}/?api-version=2021-04-12", device[1])
        client.tls_set(ca_certs=ca)

        def on_connect(c, userdata, flags, rc):
            result["rc"] = rc
            done.set()

        client.on_connect = on_connect
        try:
            client.connect(host, port)
            while not done.is_set() and time.time() < deadline + 5:
                client.loop(0.05)
        except Exception:
            result["rc"] = -1
        if result.get("rc") == 0:
            connects += 1
            client.disconnect()
            client.loop(0.05)
        else:
            refused += 1
        try:
            client.socket() and client.socket().close()
        except Exception:
            pass
    return connects, refused


def main():
    host, port, ca, hub, seconds, processes = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6])
    tokens = []
    if len(sys.argv) > 7:
        with open(sys.argv[7]) as f:
            tokens = [tuple(line.rstrip("\n").split(" ", 1)) for line in f if line.strip()]
    # Each process its own devices (a device connecting twice at once would drop its other session).
    shares = [tokens[p::processes] for p in range(processes)] if tokens else [[] for _ in range(processes)]
    with multiprocessing.Pool(processes) as pool:
        results = pool.map(worker, [(host, port, ca, hub, seconds, p, shares[p]) for p in range(processes)])
    print(sum(r[0] for r in results), sum(r[1] for r in results), seconds)


if __name__ == "__main__":
    main()
