#!/usr/bin/env bash
# PostgreSQL backend benchmark (issue 19; by hand, not in CI). One run, ratios within it:
#   - a node on LMDB and a node on PostgreSQL (a cluster of its own on this machine, fsync on,
#     synchronous_commit on: durable as production), each over HTTPS at 256 keep-alive
#     connections: the no-op /healthz, durable creates (PUT), GET device; device auth at 64
#     connections (tools/bench/auth.lua, 1,000 devices);
#   - raw PostgreSQL inserting the same rows (event + device row) at the batch size the
#     PostgreSQL node reached, from one client (registryd-bench postgres-raw);
#   - the PostgreSQL node's writer without HTTP (registryd-bench postgres-store: 256 callers in
#     one process) against raw PostgreSQL at the batch size it reached;
#   - two PostgreSQL nodes on the one database taking creates at once (128 connections each).
#
#   tools/bench-postgres.sh [seconds-per-phase, default 10]
#   PERF_OUT=/tmp/pg-creates.perf tools/bench-postgres.sh   also records a perf profile of the
#     PostgreSQL node's create phase; every run prints the CPU seconds the node, the PostgreSQL
#     server and the load generator used during each create phase (where the two cores went)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
conns=256
tools/install-deps.sh
command -v wrk >/dev/null || {
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
  $SUDO apt-get install -y -qq wrk >/dev/null
}
swift build -c release --product registryd >/dev/null
swift build -c release --product registryd-bench >/dev/null
bin=$PWD/.build/release/registryd
bench=$PWD/.build/release/registryd-bench
work=$(mktemp -d /tmp/registryd-bench-pg-XXXX)
chmod 711 "$work"  # the PostgreSQL server (user postgres) reaches its directory inside
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  tools/postgres.sh stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_url=$(REGISTRYD_PG_DURABLE=1 tools/postgres.sh start "$work/pg" "$(free_port)")
rate() { awk '/Requests\/sec/ {print $2}'; }
requests() { awk '/requests in/ {print $1}'; }
p99() { awk '$1=="99%" {print $2}'; }

# start NAME [serve args...]: sets port_NAME, url_NAME, data_NAME.
start() {
  local name=$1; shift
  local data="$work/$name" port
  port=$(free_port)
  mkdir -p "$data"
  [ -n "${KEY_FROM:-}" ] && install -m 600 "$KEY_FROM/data.key" "$data/data.key"
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" --host-name bench.local "$@" > "$data/serve.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do curl -fsk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  printf -v "port_$name" '%s' "$port"; printf -v "url_$name" '%s' "https://localhost:$port"; printf -v "data_$name" '%s' "$data"
}
cpu_of() {  # user + system CPU seconds of one process so far
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0
}
cpu_of_postgres() {  # of every process of this benchmark's PostgreSQL server (postmaster and backends)
  local pm p total=0
  pm=$(pgrep -f "bin/postgres -D $work/pg" | head -1)
  [ -z "$pm" ] && { echo 0; return; }
  for p in $pm $(pgrep -P "$pm"); do total=$(python3 -c "print($total + $(cpu_of "$p"))"); done
  echo "$total"
}
batch_of() {  # average commands per commit so far, from /metrics
  curl -fsk -H "Authorization: $2" "$1/metrics" | awk '/^registryd_writer_batch_commands_sum/ {s=$2} /^registryd_writer_batch_commands_count/ {c=$2} END {printf "%.1f %d\n", s, c}'
}

phases_of() {  # "phase sum" lines of the writer's phase histograms so far, from /metrics
  curl -fsk -H "Authorization: $2" "$1/metrics" | sed -n 's/^registryd_writer_phase_seconds_sum{phase="\([a-z]*\)"} \(.*\)/\1 \2/p'
}
phase_report() {  # BEFORE AFTER BATCHES: milliseconds per commit in each phase between two phases_of
  python3 - "$1" "$2" "$3" <<'PY'
import sys
before = dict((l.split()[0], float(l.split()[1])) for l in sys.argv[1].splitlines() if l.strip())
after = dict((l.split()[0], float(l.split()[1])) for l in sys.argv[2].splitlines() if l.strip())
commits = max(1, int(sys.argv[3]))
order = ["idle", "lease", "begin", "lock", "load", "decide", "seal", "write", "commit", "release", "fold"]
parts = [(p, (after[p] - before.get(p, 0)) * 1000 / commits) for p in order + sorted(set(after) - set(order)) if p in after]
if parts:
    print("  writer ms per commit: " + ", ".join(f"{p} {v:.2f}" for p, v in parts) + f" = {sum(v for _, v in parts):.2f}")
PY
}

# measure NAME STORAGE_ARGS...: no-op, creates, GETs, device auth on one node.
measure() {
  local name=$1; shift
  start "$name" "$@"
  local url="url_$name" data="data_$name"
  url=${!url}; data=${!data}
  export REGISTRYD_SAS; REGISTRYD_SAS=$("$bin" sas-token --data-dir "$data" --host-name bench.local --ttl 7200 "$@")
  local owner=$REGISTRYD_SAS
  noop_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/noop.lua "$url")
  wrk -t2 -c$conns -d3s -s tools/bench/create.lua "$url" -- seed > "$work/$name-seed.txt"
  local before after
  before=$(batch_of "$url" "$owner")
  local phases_before; phases_before=$(phases_of "$url" "$owner")
  local node_pid=${pids[-1]} perf_pid=""
  if [ -n "${PERF_OUT:-}" ] && [ "$name" = postgres ]; then
    perf record -F 999 -g -o "$PERF_OUT" -p "$node_pid" -- sleep "$secs" >/dev/null 2>&1 & perf_pid=$!
  fi
  local node_cpu0 pg_cpu0 wall0
  node_cpu0=$(cpu_of "$node_pid"); pg_cpu0=$(cpu_of_postgres); wall0=$(date +%s.%N)
  create_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/create.lua "$url" -- run)
  printf '%s creates: CPU seconds per wall second: node %s, PostgreSQL server %s (2 cores in all; the rest is wrk and the kernel)\n' "$name" \
    "$(python3 -c "print(f'{($(cpu_of "$node_pid") - $node_cpu0) / ($(date +%s.%N) - $wall0):.2f}')")" \
    "$(python3 -c "print(f'{($(cpu_of_postgres) - $pg_cpu0) / ($(date +%s.%N) - $wall0):.2f}')")"
  [ -n "$perf_pid" ] && wait "$perf_pid" 2>/dev/null || true
  after=$(batch_of "$url" "$owner")
  phase_report "$phases_before" "$(phases_of "$url" "$owner")" "$(( $(echo "$after" | cut -d' ' -f2) - $(echo "$before" | cut -d' ' -f2) ))"
  batch=$(python3 -c "b='$before'.split(); a='$after'.split(); print(max(1, round((float(a[0]) - float(b[0])) / max(1, int(a[1]) - int(b[1])))))")
  export REGISTRYD_IDS=$(( $(awk '/requests in/ {print $1}' "$work/$name-seed.txt") / 4 )) REGISTRYD_PREFIX=seed
  get_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/get.lua "$url")
  # Device auth: 1,000 devices with a known key, a device token each (as bench-auth.sh).
  export REGISTRYD_BODIES="$work/$name-auth.jsonl"
  python3 - "$url" "$owner" "$data" <<'PY'
import base64, hashlib, hmac, json, os, ssl, sys, time, urllib.parse, urllib.request
url, owner, data = sys.argv[1:4]
context = ssl.create_default_context(cafile=os.path.join(data, "tls", "ca.pem"))
key = base64.b64encode(bytes(range(32))).decode()
ids = [f"auth-{i}" for i in range(1000)]
for start in range(0, len(ids), 100):
    batch = [{"id": i, "importMode": "create", "authentication": {"type": "sas", "symmetricKey": {"primaryKey": key, "secondaryKey": key}}} for i in ids[start:start + 100]]
    request = urllib.request.Request(url + "/devices?api-version=2021-04-12", data=json.dumps(batch).encode(), method="POST",
                                     headers={"Authorization": owner, "Content-Type": "application/json"})
    urllib.request.urlopen(request, context=context).read()
expiry = int(time.time()) + 7200
with open(os.environ["REGISTRYD_BODIES"], "w") as out:
    for i in ids:
        sr = urllib.parse.quote(f"bench.local/devices/{i}", safe="")
        sig = base64.b64encode(hmac.new(base64.b64decode(key), f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()).decode()
        out.write(json.dumps({"deviceId": i, "token": f"SharedAccessSignature sr={sr}&sig={urllib.parse.quote(sig, safe='')}&se={expiry}"}) + "\n")
PY
  REGISTRYD_SAS=$("$bin" sas-token --data-dir "$data" --host-name bench.local --policy device --ttl 7200 "$@")
  auth_noop_out=$(wrk -t2 -c64 -d${secs}s --latency -s tools/bench/noop.lua "$url")
  auth_out=$(wrk -t2 -c64 -d${secs}s --latency -s tools/bench/auth.lua "$url")
  decisions=$(curl -fsk -H "Authorization: $owner" "$url/metrics" | grep '^registryd_device_auth_decisions_total' | grep -v ' 0$' || true)
  printf '%s: no-op %s req/s | creates %s req/s (p99 %s, %s commands per commit) | GET %s req/s (p99 %s) | no-op@64 %s | device auth %s req/s (p99 %s)\n' \
    "$name" "$(echo "$noop_out" | rate)" "$(echo "$create_out" | rate)" "$(echo "$create_out" | p99)" "$batch" \
    "$(echo "$get_out" | rate)" "$(echo "$get_out" | p99)" "$(echo "$auth_noop_out" | rate)" "$(echo "$auth_out" | rate)" "$(echo "$auth_out" | p99)"
  echo "  auth decisions: $(echo "$decisions" | tr '\n' ' ')"
  printf -v "noop_$name" '%s' "$(echo "$noop_out" | rate)"; printf -v "create_$name" '%s' "$(echo "$create_out" | rate)"
  printf -v "get_$name" '%s' "$(echo "$get_out" | rate)"; printf -v "authnoop_$name" '%s' "$(echo "$auth_noop_out" | rate)"
  printf -v "auth_$name" '%s' "$(echo "$auth_out" | rate)"; printf -v "batch_$name" '%s' "$batch"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
}

measure lmdb
# POOL=N sets the nodes' connection pool (the URL's poolSize; default 8).
pool="${POOL:+&poolSize=$POOL}"
measure postgres --storage "$pg_url?hub=bench1$pool"
raw=$("$bench" postgres-raw --url "$pg_url" --batch "$batch_postgres" --rows 50000 | awk '/raw PostgreSQL/ {print $3}')
echo "raw PostgreSQL, same rows at batch $batch_postgres: $raw rows/s"
# The same node's writer without HTTP (256 callers in one process), against raw PostgreSQL at the
# batch size it reached, in one run: what the backend costs over the database alone.
store_out=$("$bench" postgres-store --url "$pg_url" --creates "${STORE_CREATES:-50000}")
echo "$store_out"
store_ratio=$(echo "$store_out" | sed -n 's/.*writer \/ raw = \([0-9.]*\).*/\1/p')

# Two nodes on one hub, creates sent to both at once.
start nodeA --storage "$pg_url?hub=bench2$pool"
KEY_FROM="$data_nodeA" start nodeB --storage "$pg_url?hub=bench2$pool"
export REGISTRYD_SAS; REGISTRYD_SAS=$("$bin" sas-token --data-dir "$data_nodeA" --host-name bench.local --ttl 7200 --storage "$pg_url?hub=bench2")
wrk -t1 -c128 -d${secs}s -s tools/bench/create.lua "$url_nodeA" -- twoA > "$work/twoA.txt" &
wa=$!
wrk -t1 -c128 -d${secs}s -s tools/bench/create.lua "$url_nodeB" -- twoB > "$work/twoB.txt"
wait $wa
two=$(python3 -c "print(round($(rate < "$work/twoA.txt") + $(rate < "$work/twoB.txt")))")
verify=$("$bin" audit verify --data-dir "$data_nodeA" --storage "$pg_url?hub=bench2" | tail -1)
echo "two PostgreSQL nodes: $two creates/s together ($verify)"
# A change on node A reaching node B's device authentication (LISTEN/NOTIFY, then B's fold).
broker=$("$bin" sas-token --data-dir "$data_nodeA" --host-name bench.local --policy device --ttl 7200 --storage "$pg_url?hub=bench2")
python3 tools/bench/notify_latency.py "$url_nodeA" "$data_nodeA/tls/ca.pem" "$url_nodeB" "$data_nodeB/tls/ca.pem" \
  "$REGISTRYD_SAS" "$broker" bench.local "${NOTIFY_SAMPLES:-200}"

python3 - <<PY
noop_l, create_l, get_l, an_l, auth_l = $noop_lmdb, $create_lmdb, $get_lmdb, $authnoop_lmdb, $auth_lmdb
noop_p, create_p, get_p, an_p, auth_p = $noop_postgres, $create_postgres, $get_postgres, $authnoop_postgres, $auth_postgres
raw, two = $raw, $two
print(f"PostgreSQL creates / raw PostgreSQL same rows = {create_p / raw:.2f}   (target >= 0.50; over HTTPS, wrk and TLS on the same two cores)")
print(f"PostgreSQL writer without HTTP / raw PostgreSQL same rows = {$store_ratio:.2f}")
print(f"PostgreSQL GET / no-op = {get_p / noop_p:.2f}   (target >= 0.50)   LMDB: {get_l / noop_l:.2f}")
print(f"PostgreSQL device auth / no-op@64 = {auth_p / an_p:.2f}   (target >= 0.50)   LMDB: {auth_l / an_l:.2f}")
print(f"creates: PostgreSQL {create_p:.0f}/s, LMDB {create_l:.0f}/s (PostgreSQL / LMDB = {create_p / create_l:.2f}); two PostgreSQL nodes {two:.0f}/s")
PY
