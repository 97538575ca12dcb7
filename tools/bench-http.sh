#!/usr/bin/env bash
# HTTPS benchmark of a running `registryd serve` (by hand, not in CI). In one run it measures, at
# 256 keep-alive connections: the no-op health route (the baseline), durable creates, GETs,
# GET latency at half of the maximum GET load, and raw LMDB doing the same puts at the batch size
# the server reached (read from LMDB's transaction counter with mdb_stat). Ratios are what the
# targets judge (DESIGN §9); run it three times and report the median.
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
bin=.build/release/registryd
# BENCH_DATA_DIR=DIR runs against an existing data directory (e.g. one with a million identities
# imported; it is written to and kept), otherwise a fresh one that is removed afterwards.
data="${BENCH_DATA_DIR:-$(mktemp -d /tmp/registryd-bench-http-XXXX)}"
keep="${BENCH_DATA_DIR:+yes}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" --log-level warning &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; [ -n "$keep" ] || rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -fsk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
export REGISTRYD_SAS; REGISTRYD_SAS=$("$bin" sas-token --data-dir "$data" --ttl 7200)
url="https://localhost:$port"

rate() { awk '/Requests\/sec/ {print $2}'; }
txns() { mdb_stat -e "$data/lmdb" | awk '/Last transaction ID/ {print $4}'; }

echo "fsync probe and raw LMDB come from: $bin bench store"
noop=$(wrk -t2 -c$conns -d${secs}s "$url/healthz" | rate)

# Seed ids for the GET phase (2 threads x N ids with prefix 'seed'), then measure creates.
wrk -t2 -c$conns -d3s -s tools/bench/create.lua "$url" -- seed > /tmp/registryd-seed.txt
seeded=$(awk '/requests in/ {print $1}' /tmp/registryd-seed.txt)
t0=$(txns)
create_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/create.lua "$url" -- run)
t1=$(txns)
creates=$(echo "$create_out" | rate)
created=$(echo "$create_out" | awk '/requests in/ {print $1}')
batch=$(python3 -c "print(max(1, round($created / max(1, $t1 - $t0))))")

export REGISTRYD_IDS=$((seeded / 2 / 2)) REGISTRYD_PREFIX=seed
perf_pid=""
if [ -n "${PERF_OUT:-}" ]; then perf record -F 999 -g -o "$PERF_OUT" -p $pid -- sleep "$secs" >/dev/null 2>&1 & perf_pid=$!; fi
get_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/get.lua "$url")
[ -n "$perf_pid" ] && wait "$perf_pid" || true
gets=$(echo "$get_out" | rate)
# Half of the maximum load: each connection waits so that all together send about gets/2 per second.
export REGISTRYD_DELAY_MS; REGISTRYD_DELAY_MS=$(python3 -c "print(max(1, int(1000 * $conns / ($gets / 2))))")
half_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/get.lua "$url")
half_rate=$(echo "$half_out" | rate)
half_p99=$(echo "$half_out" | awk '$1=="99%" {print $2}')
unset REGISTRYD_DELAY_MS

raw=$("$bin" bench store --raw-only --batch "$batch" --creates 50000 | awk '/raw LMDB/ {print $(NF)}')

echo "no-op /healthz:         $noop req/s"
echo "creates (PUT):          $creates req/s   ($batch events per commit)"
echo "$create_out" | awk '$1 ~ /^(50|90|99)%$/ {print "    create " $1 " " $2}'
echo "raw LMDB same puts:     $raw puts/s at batch $batch"
echo "GET device:             $gets req/s"
echo "$get_out" | awk '$1 ~ /^(50|90|99)%$/ {print "    get " $1 " " $2}'
echo "GET at half load:       $half_rate req/s, p99 $half_p99"
python3 - "$noop" "$creates" "$raw" "$gets" <<'PY'
import sys
noop, creates, raw, gets = map(float, sys.argv[1:])
print(f"creates / min(no-op, raw LMDB) = {creates / min(noop, raw):.2f}   (target >= 0.50)")
print(f"GETs / no-op                   = {gets / noop:.2f}   (target >= 0.80)")
PY
