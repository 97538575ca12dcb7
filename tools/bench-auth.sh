#!/usr/bin/env bash
# Device-authentication benchmark of a running `registryd serve` (by hand, not in CI): HTTPS with
# keep-alive at 64 connections, POST /registry/auth/device with device-key SAS tokens for 1,000
# devices, against the same server's no-op /healthz in the same run (the issue's ratio), then the
# EMQX authenticator route. Every answer is checked to be an allow (on the server's decision
# counters in /metrics).
#
#   tools/bench-auth.sh [seconds-per-phase, default 10]   (ROUNDS=N: rounds of the three phases, default 5)
#   PERF_OUT=/tmp/auth.perf tools/bench-auth.sh   also records a perf profile of the auth phase
#   WINDOWS=1 tools/bench-auth.sh   gives every device's keys validity windows (open now), so each
#                                   check also reads and applies a window
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
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -fsk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
url="https://localhost:$port"
owner=$("$bin" sas-token --data-dir "$data" --ttl 7200)
export REGISTRYD_SAS; REGISTRYD_SAS=$("$bin" sas-token --data-dir "$data" --policy device --ttl 7200)
export REGISTRYD_BODIES="$data/auth-bodies.jsonl"

# 1,000 devices with known keys (bulk creates), and a device token for each, made as the device
# SDK makes them (sr and sig percent-encoded).
python3 - "$url" "$owner" "$port" "$devices" "$data" "${WINDOWS:-0}" <<'PY'
import base64, hashlib, hmac, json, os, ssl, sys, time, urllib.parse, urllib.request
url, owner, port, count, data, windows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1"
context = ssl.create_default_context(cafile=os.path.join(data, "tls", "ca.pem"))
key = base64.b64encode(bytes(range(32))).decode()
ids = [f"auth-{i}" for i in range(count)]
for start in range(0, count, 100):
    authentication = {"type": "sas", "symmetricKey": {"primaryKey": key, "secondaryKey": key}}
    if windows:
        authentication["validity"] = {"primary": {"notBefore": "2020-01-01T00:00:00Z", "notAfter": "2099-01-01T00:00:00Z"},
                                      "secondary": {"notAfter": "2099-01-01T00:00:00Z"}}
    batch = [{"id": i, "importMode": "create", "authentication": authentication} for i in ids[start:start + 100]]
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

source tools/bench/rounds.sh
# Every phase's client does the same work per request (formatted once, cycled through one Lua
# callback, same Authorization header); the unscripted no-op is printed for reference only.
# The machine is shared and its neighbours come and go within seconds, so the phases alternate
# in short rounds and the ratio reported is the median of the rounds' ratios (each round's
# phases run back to back, under about the same load).
rounds="${ROUNDS:-5}"
plain_out=$(wrk -t2 -c$conns -d${secs}s --latency "$url/healthz")
auth_total=0; emqx_total=0; ratios=""; emqx_ratios=""; cpu_ratios=""
for round in $(seq "$rounds"); do
  round_pair "$round" tools/bench/auth.lua
  auth_out=$measured_out
  cpu_ratios="$cpu_ratios $cpu_ratio"
  emqx_out=$(REGISTRYD_AUTH_PATH=/registry/auth/emqx REGISTRYD_BODIES="$data/emqx-bodies.jsonl" wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/auth.lua "$url")
  auth_total=$((auth_total + $(echo "$auth_out" | requests))); emqx_total=$((emqx_total + $(echo "$emqx_out" | requests)))
  noop=$(echo "$noop_out" | rate); auth=$(echo "$auth_out" | rate); emqx=$(echo "$emqx_out" | rate)
  ratios="$ratios $(python3 -c "print(f'{$auth / $noop:.3f}')")"; emqx_ratios="$emqx_ratios $(python3 -c "print(f'{$emqx / $noop:.3f}')")"
  printf 'round %s: no-op %s req/s p99 %s | device %s req/s p99 %s | emqx %s req/s p99 %s\n' "$round" \
    "$noop" "$(echo "$noop_out" | p99)" "$auth" "$(echo "$auth_out" | p99)" "$emqx" "$(echo "$emqx_out" | p99)"
done

# Every answer must have been an allow (a benchmark of denials would measure the wrong thing):
# the server's decision counters must show no denial and at least as many allows as wrk counted
# answers (wrk leaves a few requests unanswered when it stops).
curl -fsk -H "Authorization: $owner" "$url/metrics" > "$data/metrics.txt"
python3 - "$auth_total" "$emqx_total" "$data/metrics.txt" <<'PY'
import re, sys
answered = {"device": int(sys.argv[1]), "emqx": int(sys.argv[2])}
counts = {}
for line in open(sys.argv[3]).read().splitlines():
    m = re.match(r'registryd_device_auth_decisions_total\{route="(\w+)",result="(\w+)",detail="(\w+)"\} (\S+)', line)
    if m: counts[m.groups()[:3]] = float(m.group(4))
for route, n in answered.items():
    allows = sum(v for (r, result, _), v in counts.items() if r == route and result == "allow")
    denies = {d: v for (r, result, d), v in counts.items() if r == route and result == "deny" and v > 0}
    if denies or allows < n:
        sys.exit(f"{route}: {n} answers counted by wrk, the server counted {allows:.0f} allows and denials {denies}")
PY

echo "no-op /healthz unscripted (reference, not in the ratio): $(echo "$plain_out" | rate) req/s, p99 $(echo "$plain_out" | p99)"
echo "every answer an allow (checked on the server's decision counters)"
python3 - $ratios -- $emqx_ratios -- $cpu_ratios <<'PY'
import statistics, sys
device, emqx, cpu = [[float(x) for x in part.split()] for part in " ".join(sys.argv[1:]).split("--")]
print(f"auth / no-op, median of {len(device)} rounds = {statistics.median(device):.2f}   (target >= 0.70; rounds {' '.join(f'{r:.2f}' for r in device)})")
print(f"emqx / no-op, median of {len(emqx)} rounds = {statistics.median(emqx):.2f}   (rounds {' '.join(f'{r:.2f}' for r in emqx)})")
print(f"server CPU per no-op / per device check, median = {statistics.median(cpu):.2f}   (rounds {' '.join(f'{r:.2f}' for r in cpu)})")
PY
