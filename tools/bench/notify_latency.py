"""How long a change made on one PostgreSQL node takes to reach another node's device
authentication (issue 19: the notification latency; target p99 < 100 ms).

Run by tools/bench-postgres.sh with two running nodes on one hub:
  python3 notify_latency.py URL_A CA_A URL_B CA_B OWNER_TOKEN BROKER_TOKEN HOST [SAMPLES]
Each sample disables (or re-enables) a device through node A and polls node B's
/registry/auth/device until its answer changes; the latency is from A's 200 to B's changed answer.
"""

import base64
import hashlib
import hmac
import statistics
import sys
import time
import urllib.parse

import requests

url_a, ca_a, url_b, ca_b, owner, broker, host = sys.argv[1:8]
samples = int(sys.argv[8]) if len(sys.argv) > 8 else 200
api = "api-version=2021-04-12"
# verify= on every call: a session's own `verify` loses to REQUESTS_CA_BUNDLE in the environment.
a, b = requests.Session(), requests.Session()
made = a.put(f"{url_a}/devices/latency?{api}", json={"deviceId": "latency"}, headers={"Authorization": owner}, verify=ca_a).json()
key = made["authentication"]["symmetricKey"]["primaryKey"]
sr = urllib.parse.quote(f"{host}/devices/latency", safe="")
expiry = int(time.time()) + 7200
sig = base64.b64encode(hmac.new(base64.b64decode(key), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()).decode()
token = f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(sig, safe='')}&se={expiry}"


def answer():
    r = b.post(f"{url_b}/registry/auth/device", json={"deviceId": "latency", "token": token}, headers={"Authorization": broker}, verify=ca_b)
    return r.json()["result"]


latencies = []
device = made
for i in range(samples):
    device["status"] = "disabled" if i % 2 == 0 else "enabled"
    want = "deny" if i % 2 == 0 else "allow"
    r = a.put(f"{url_a}/devices/latency?{api}", json=device, headers={"Authorization": owner, "If-Match": "*"}, verify=ca_a)
    assert r.status_code == 200, r.text
    device = r.json()
    changed = time.perf_counter()
    while answer() != want:
        pass
    latencies.append((time.perf_counter() - changed) * 1000)
latencies.sort()
p50 = statistics.median(latencies)
p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
print(f"cross-node change → device auth: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms over {samples} changes   (target p99 < 100 ms)")
