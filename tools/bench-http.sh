#!/usr/bin/env bash
# HTTPS benchmark of a running `registryd serve` (by hand, not in CI). In one run it measures, at
# 256 keep-alive connections: the no-op health route (the baseline), durable creates, GETs,
# GET latency at half of the maximum GET load, and raw LMDB doing the same puts at the batch size
# the server reached (read from LMDB's transaction counter with mdb_stat). Ratios are what the
# targets judge (DESIGN §9). The no-op and GET phases alternate in rounds (ROUNDS, default 5)
# and the GET ratio is the median of the rounds'.
#
#   tools/bench-http.sh [seconds-per-phase, default 10]
#   PERF_OUT=/tmp/get.perf tools/bench-http.sh   also records a perf profile of the GET phase
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
conns=256
tools/install-deps.sh
command -v wrk >/dev/null && command -v mdb_stat >/dev/null || {
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
  $SUDO apt-get install -y -qq wrk lmdb-utils >/dev/null
}
swift build -c release --product registryd >/dev/null
swift build -c release --product registryd-bench >/dev/null
bin=.build/release/registryd
bench=.build/release/registryd-bench
# BENCH_DATA_DIR=DIR runs against an existing data directory (e.g. one with a million identities
# imported; it is written to and kept), otherwise a fresh one that is removed afterwards.
data="${BENCH_DATA_DIR:-$(mktemp -d /tmp/registryd-bench-http-XXXX)}"
keep="${BENCH_DATA_DIR:+yes}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; [ -n "$keep" ] || rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -fsk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
export REGISTRYD_SAS; REGISTRYD_SAS=$("$bin" sas-token --data-dir "$data" --ttl 7200)
url="https://localhost:$port"

echo "fsync probe and raw LMDB come from: $bench store"
source tools/bench/rounds.sh
txns() { mdb_stat -e "$data/lmdb" | awk '/Last transaction ID/ {print $4}'; }

# The no-op baseline is sent as the GETs are (tools/bench/noop.lua: same Authorization header,
# requests formatted once and cycled through one Lua callback): wrk shares the cores with the
# server, and a baseline whose client works less per request would flatter it. The unscripted
# no-op is printed for reference only.
plain=$(wrk -t2 -c$conns -d${secs}s "$url/healthz" | rate)

# Seed ids for the GET phase (2 threads x N ids with prefix 'seed'), then measure creates.
wrk -t2 -c$conns -d3s -s tools/bench/create.lua "$url" -- seed > /tmp/registryd-seed.txt
seeded=$(awk '/requests in/ {print $1}' /tmp/registryd-seed.txt)
t0=$(txns)
create_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/create.lua "$url" -- run)
t1=$(txns)
creates=$(echo "$create_out" | rate)
created=$(echo "$create_out" | requests)
batch=$(python3 -c "print(max(1, round($created / max(1, $t1 - $t0))))")

# GETs start once the creates' dirty pages are on disk (the kernel's writeback would otherwise
# run during the first GET phase) and after a short unmeasured warm-up. The machine is shared
# and its neighbours come and go within seconds, so the no-op and GET phases alternate in
# rounds and the ratio is the median of the rounds' ratios.
sync
export REGISTRYD_IDS=$((seeded / 2 / 2)) REGISTRYD_PREFIX=seed
wrk -t2 -c$conns -d2s -s tools/bench/get.lua "$url" >/dev/null
rounds="${ROUNDS:-5}"
ratios=""; cpu_ratios=""; noops=""; gets=""; get_total=0
for round in $(seq "$rounds"); do
  round_pair "$round" tools/bench/get.lua
  get_out=$measured_out
  cpu_ratios="$cpu_ratios $cpu_ratio"
  noop=$(echo "$noop_out" | rate); get=$(echo "$get_out" | rate)
  noops="$noops $noop"; gets="$gets $get"; get_total=$((get_total + $(echo "$get_out" | requests)))
  ratios="$ratios $(python3 -c "print(f'{$get / $noop:.3f}')")"
  printf 'round %s: no-op %s req/s p99 %s | GET %s req/s p50 %s p99 %s\n' "$round" "$noop" "$(echo "$noop_out" | p99)" "$get" \
    "$(echo "$get_out" | awk '$1=="50%" {print $2}')" "$(echo "$get_out" | p99)"
done
noop=$(python3 -c "import statistics; print(statistics.median([$(echo $noops | tr ' ' ',')]))")
gets=$(python3 -c "import statistics; print(statistics.median([$(echo $gets | tr ' ' ',')]))")

# Half of the maximum load: each connection waits so that all together send about gets/2 per second.
export REGISTRYD_DELAY_MS; REGISTRYD_DELAY_MS=$(python3 -c "print(max(1, int(1000 * $conns / ($gets / 2))))")
half_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/get.lua "$url")
half_rate=$(echo "$half_out" | rate)
half_p99=$(echo "$half_out" | p99)
get_total=$((get_total + $(echo "$half_out" | requests)))
unset REGISTRYD_DELAY_MS

# Every GET must have found its device (a benchmark of 404s would measure the wrong thing).
owner=$("$bin" sas-token --data-dir "$data" --ttl 600)
curl -fsk -H "Authorization: $owner" "$url/metrics" > "$data/metrics.txt"
python3 - "$get_total" "$data/metrics.txt" <<'PY'
import re, sys
counts = {}
for line in open(sys.argv[2]).read().splitlines():
    m = re.match(r'registryd_http_requests_total\{operation="GET /devices/\{deviceId\}",status="(\d+)"\} (\S+)', line)
    if m: counts[m.group(1)] = float(m.group(2))
ok = counts.pop("200", 0)
if counts or ok < int(sys.argv[1]):
    sys.exit(f"GET answers: {ok:.0f} found of {sys.argv[1]} counted by wrk, others {counts}")
PY

raw=$("$bench" store --raw-only --batch "$batch" --creates 50000 | awk '/raw LMDB/ {print $(NF)}')

echo "no-op /healthz unscripted (reference, not in the ratios): $plain req/s"
echo "no-op /healthz:         $noop req/s (median of the rounds)"
echo "creates (PUT):          $creates req/s   ($batch events per commit)"
echo "$create_out" | awk '$1 ~ /^(50|90|99)%$/ {print "    create " $1 " " $2}'
echo "raw LMDB same puts:     $raw puts/s at batch $batch"
echo "GET device:             $gets req/s (median of the rounds; every answer a 200, checked on the server's counters)"
echo "GET at half load:       $half_rate req/s, p99 $half_p99"
python3 - "$noop" "$creates" "$raw" $ratios -- $cpu_ratios <<'PY'
import statistics, sys
noop, creates, raw = map(float, sys.argv[1:4])
ratios, cpu = [[float(x) for x in part.split()] for part in " ".join(sys.argv[4:]).split("--")]
print(f"creates / min(no-op, raw LMDB) = {creates / min(noop, raw):.2f}   (target >= 0.50)")
print(f"GETs / no-op, median of {len(ratios)} rounds = {statistics.median(ratios):.2f}   (target >= 0.80; rounds {' '.join(f'{r:.2f}' for r in ratios)})")
print(f"server CPU per no-op / per GET, median = {statistics.median(cpu):.2f}   (rounds {' '.join(f'{r:.2f}' for r in cpu)})")
PY
