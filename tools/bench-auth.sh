#!/usr/bin/env bash
# Device-authentication benchmark of a running `registryd serve` (by hand, not in CI): HTTPS with
# keep-alive at 64 connections, POST /registry/auth/device with device-key SAS tokens for 1,000
# devices, against the same server's no-op /healthz in the same run (the issue's ratio), then the
# EMQX authenticator route. Every answer is checked to be an allow.
#
#   tools/bench-auth.sh [seconds-per-phase, default 10]
#   PERF_OUT=/tmp/auth.perf tools/bench-auth.sh   also records a perf profile of the auth phase
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
conns=64
devices=1000
tools/install-deps.sh
command -v wrk >/dev/null || {
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
  $SUDO apt-get install -y -qq wrk >/dev/null
}
swift build -c release --product registryd >/dev/null
bin=.build/release/registryd
data=$(mktemp -d /tmp/registryd-bench-auth-XXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" --log-level warning &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -fsk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
url="https://localhost:$port"
owner=$("$bin" sas-token --data-dir "$data" --ttl 7200)
export REGISTRYD_SAS; REGISTRYD_SAS=$("$bin" sas-token --data-dir "$data" --policy device --ttl 7200)
export REGISTRYD_BODIES="$data/auth-bodies.jsonl"

# 1,000 devices with known keys (bulk creates), and a device token for each, made as the device
# SDK makes them (sr and sig percent-encoded).
python3 - "$url" "$owner" "$port" "$devices" "$data" <<'PY'
import base64, hashlib, hmac, json, os, ssl, sys, time, urllib.parse, urllib.request
url, owner, port, count, data = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
context = ssl.create_default_context(cafile=os.path.join(data, "tls", "ca.pem"))
key = base64.b64encode(bytes(range(32))).decode()
ids = [f"auth-{i}" for i in range(count)]
for start in range(0, count, 100):
    batch = [{"id": i, "importMode": "create", "authentication": {"type": "sas", "symmetricKey": {"primaryKey": key, "secondaryKey": key}}} for i in ids[start:start + 100]]
    request = urllib.request.Request(url + "/devices?api-version=2021-04-12", data=json.dumps(batch).encode(), method="POST",
                                     headers={"Authorization": owner, "Content-Type": "application/json"})
    urllib.request.urlopen(request, context=context).read()
expiry = int(time.time()) + 7200
host = f"localhost:{port}"
with open(os.environ["REGISTRYD_BODIES"], "w") as out, open(os.path.join(data, "emqx-bodies.jsonl"), "w") as emqx:
    for i in ids:
        sr = urllib.parse.quote(f"{host}/devices/{i}", safe="")
        sig = base64.b64encode(hmac.new(base64.b64decode(key), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()).decode()
        token = f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(sig, safe='')}&se={expiry}"
        out.write(json.dumps({"deviceId": i, "token": token}) + "\n")
        emqx.write(json.dumps({"username": f"{host}/{i}/?api-version=2021-04-12", "password": token, "clientid": i}) + "\n")
PY

rate() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1=="99%" {print $2}'; }
noop_out=$(wrk -t2 -c$conns -d${secs}s --latency "$url/healthz")
perf_pid=""
if [ -n "${PERF_OUT:-}" ]; then perf record -F 999 -g -o "$PERF_OUT" -p $pid -- sleep "$secs" >/dev/null 2>&1 & perf_pid=$!; fi
auth_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/auth.lua "$url")
[ -n "$perf_pid" ] && wait "$perf_pid" || true
emqx_out=$(REGISTRYD_AUTH_PATH=/registry/auth/emqx REGISTRYD_BODIES="$data/emqx-bodies.jsonl" wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/auth.lua "$url")
noop=$(echo "$noop_out" | rate)
auth=$(echo "$auth_out" | rate)
emqx=$(echo "$emqx_out" | rate)
echo "no-op /healthz:             $noop req/s, p99 $(echo "$noop_out" | p99)"
echo "POST /registry/auth/device: $auth req/s, p99 $(echo "$auth_out" | p99)"
echo "POST /registry/auth/emqx:   $emqx req/s, p99 $(echo "$emqx_out" | p99)"
python3 -c "print(f'auth / no-op = {$auth / $noop:.2f}   (target >= 0.70);  emqx / no-op = {$emqx / $noop:.2f}')"
