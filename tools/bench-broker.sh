#!/usr/bin/env bash
# Broker-facing benchmark (issue 20; by hand, not in CI). One run, ratios within it:
#   1. the questions a broker asks for a device (login, then a publish and a subscribe topic
#      check; EMQX's JSON routes and RabbitMQ's form-encoded ones, 1,000 devices) over HTTPS at 64
#      keep-alive connections, against the same server's no-op route, in alternating rounds
#      (tools/bench/rounds.sh); every answer checked to be an allow on the decision counters;
#   2. MQTT connects per second through a private RabbitMQ node (TLS, connect, CONNACK,
#      disconnect, from PROCESSES Python processes) with registryd deciding, against the same
#      broker with authentication off.
#
#   tools/bench-broker.sh [seconds-per-phase, default 10]   (ROUNDS=N, default 3; PROCESSES=N, default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
conns=64
devices=1000
processes="${PROCESSES:-4}"
tools/install-deps.sh
command -v wrk >/dev/null || {
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
  $SUDO apt-get install -y -qq wrk >/dev/null
}
swift build -c release --product registryd >/dev/null
bin=.build/release/registryd
python=.build/device-venv/bin/python
[ -x "$python" ] || { echo "run tools/test.sh once first (it makes .build/device-venv with paho-mqtt)" >&2; exit 1; }
work=$(mktemp -d /tmp/registryd-bench-broker-XXXX)
data="$work/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
hub=bench.registry.test
mkdir -p "$data"
printf '{"deviceAuth": {"hostNames": ["%s"]}}\n' "$hub" > "$work/registryd.json"
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" --config "$work/registryd.json" > "$work/serve.log" 2>&1 &
pid=$!
cleanup() {
  tools/rabbitmq.sh stop "$work/rabbitmq" >/dev/null 2>&1 || true
  kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -fsk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
url="https://localhost:$port"
owner=$("$bin" sas-token --data-dir "$data" --ttl 7200)
export REGISTRYD_SAS; REGISTRYD_SAS=$("$bin" sas-token --data-dir "$data" --policy device --ttl 7200)
export REGISTRYD_BODIES="$work/questions.txt"

# 1,000 devices with a known key, a token each; the questions for each; the token file for MQTT.
python3 - "$url" "$owner" "$hub" "$devices" "$data" "$work" <<'PY'
import base64, hashlib, hmac, json, os, ssl, sys, time, urllib.parse, urllib.request
url, owner, hub, count, data, work = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
context = ssl.create_default_context(cafile=os.path.join(data, "tls", "ca.pem"))
key = base64.b64encode(bytes(range(32))).decode()
ids = [f"car-{i}" for i in range(count)]
for start in range(0, count, 100):
    batch = [{"id": i, "importMode": "create", "authentication": {"type": "sas", "symmetricKey": {"primaryKey": key, "secondaryKey": key}}} for i in ids[start:start + 100]]
    request = urllib.request.Request(url + "/devices?api-version=2021-04-12", data=json.dumps(batch).encode(), method="POST",
                                     headers={"Authorization": owner, "Content-Type": "application/json"})
    urllib.request.urlopen(request, context=context).read()
expiry = int(time.time()) + 7200
form = lambda fields: urllib.parse.urlencode(fields)
with open(os.environ["REGISTRYD_BODIES"], "w") as out, open(os.path.join(work, "tokens.txt"), "w") as tokens:
    for i in ids:
        sr = urllib.parse.quote(f"{hub}/devices/{i}", safe="")
        sig = base64.b64encode(hmac.new(base64.b64decode(key), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()).decode()
        token = f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(sig, safe='')}&se={expiry}"
        tokens.write(f"{i} {token}\n")
        user = f"{hub}/{i}/?api-version=2021-04-12"
        out.write("/registry/auth/emqx\t" + json.dumps({"username": user, "password": token, "clientid": i}) + "\n")
        out.write("/registry/auth/emqx/authorize\t" + json.dumps({"username": user, "clientid": i, "action": "publish", "topic": f"devices/{i}/messages/events/"}) + "\n")
        out.write("/registry/auth/emqx/authorize\t" + json.dumps({"username": user, "clientid": i, "action": "subscribe", "topic": f"devices/{i}/messages/devicebound/#"}) + "\n")
        out.write("/registry/auth/rabbitmq/user\t" + form({"username": user, "password": token, "client_id": i, "vhost": "/"}) + "\n")
        out.write("/registry/auth/rabbitmq/topic\t" + form({"username": user, "vhost": "/", "resource": "topic", "name": "amq.topic", "permission": "write",
                                                           "routing_key": f"devices.{i}.messages.events.", "variable_map.client_id": i}) + "\n")
        out.write("/registry/auth/rabbitmq/topic\t" + form({"username": user, "vhost": "/", "resource": "topic", "name": "amq.topic", "permission": "read",
                                                           "routing_key": f"devices.{i}.messages.devicebound.#", "variable_map.client_id": i}) + "\n")
PY

source tools/bench/rounds.sh
rounds="${ROUNDS:-3}"
ratios=""; cpu_ratios=""; answered=0
for round in $(seq "$rounds"); do
  round_pair "$round" tools/bench/broker_questions.lua
  answered=$((answered + $(echo "$measured_out" | requests)))
  noop=$(echo "$noop_out" | rate); asked=$(echo "$measured_out" | rate)
  ratios="$ratios $(python3 -c "print(f'{$asked / $noop:.3f}')")"; cpu_ratios="$cpu_ratios $cpu_ratio"
  printf 'round %s: no-op %s req/s p99 %s | broker questions %s req/s p99 %s\n' "$round" "$noop" "$(echo "$noop_out" | p99)" "$asked" "$(echo "$measured_out" | p99)"
done
curl -fsk -H "Authorization: $owner" "$url/metrics" > "$work/metrics.txt"
python3 - "$answered" "$work/metrics.txt" <<'PY'
import re, sys
answered, allows, denies = int(sys.argv[1]), 0.0, {}
for line in open(sys.argv[2]).read().splitlines():
    m = re.match(r'registryd_(device_auth|topic)_decisions_total\{(.*)\} (\S+)', line)
    if not m: continue
    labels, value = m.group(2), float(m.group(3))
    if 'result="allow"' in labels: allows += value
    elif value > 0: denies[labels] = value
if denies or allows < answered:
    sys.exit(f"{answered} answers counted by wrk; the server counted {allows:.0f} allows and denials {denies}")
print(f"every answer an allow ({allows:.0f} on the server's decision counters)")
PY
python3 - $ratios -- $cpu_ratios <<'PY'
import statistics, sys
asked, cpu = [[float(x) for x in part.split()] for part in " ".join(sys.argv[1:]).split("--")]
print(f"broker questions / no-op, median of {len(asked)} rounds = {statistics.median(asked):.2f}   (target >= 0.70; rounds {' '.join(f'{r:.2f}' for r in asked)})")
print(f"server CPU per no-op / per question, median = {statistics.median(cpu):.2f}")
PY

# MQTT connects through RabbitMQ: registryd deciding, then the same broker with authentication off.
tls="$data/tls"
token=$(python3 -c 'import urllib.parse,sys; print(urllib.parse.quote(sys.argv[1], safe=""))' "$REGISTRYD_SAS")
connect_rate() {  # connect_rate TOKENS-FILE-OR-EMPTY: prints connects/s and the refused count
  local out
  out=$("$python" tools/bench/mqtt_connect.py localhost 8883 "$tls/ca.pem" "$hub" "$secs" "$processes" $1)
  python3 -c "c, r, s = '$out'.split(); print(f'{int(c) / float(s):.1f} {r}')"
}
eval "$(tools/rabbitmq.sh start "$work/rabbitmq" --auth-url "https://device:$token@localhost:$port" \
  --tls-cert "$tls/server.pem" --tls-key "$tls/server-key.pem" --tls-ca "$tls/ca.pem" | sed 's/^/export /')"
read -r deciding deciding_refused <<<"$(connect_rate "$work/tokens.txt")"
tools/rabbitmq.sh stop "$work/rabbitmq" >/dev/null
tools/rabbitmq.sh start "$work/rabbitmq" --anonymous --tls-cert "$tls/server.pem" --tls-key "$tls/server-key.pem" --tls-ca "$tls/ca.pem" >/dev/null
read -r open open_refused <<<"$(connect_rate "")"
tools/rabbitmq.sh stop "$work/rabbitmq" >/dev/null
echo "MQTT connects through RabbitMQ ($processes processes, TLS): registryd deciding $deciding/s ($deciding_refused refused), authentication off $open/s ($open_refused refused)"
python3 -c "print(f'connects with registryd deciding / authentication off = {$deciding / $open:.2f}')"
