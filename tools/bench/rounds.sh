# Shared by tools/bench-http.sh and tools/bench-auth.sh (sourced once `pid`, `url`, `conns` and
# `secs` are set): wrk output readers, and one round of the no-op baseline followed by a measured
# phase. wrk shares the two cores with the server, so the baseline goes through the same kind of
# script as the measured phase (tools/bench/noop.lua), and the two run back to back, under about
# the same load from the machine's neighbours.
rate() { awk '/Requests\/sec/ {print $2}'; }
requests() { awk '/requests in/ {print $1}'; }
p99() { awk '$1=="99%" {print $2}'; }
# The server's CPU time (user + system clock ticks), for CPU per request: a second view that a
# neighbour's load disturbs less than throughput does.
ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }

# round_pair ROUND SCRIPT: sets noop_out and measured_out (wrk's output) and cpu_ratio (server
# CPU per no-op request / per measured request). PERF_OUT=FILE profiles the first measured phase.
round_pair() {
  local c0 c1 c2 perf_pid=""
  c0=$(ticks)
  noop_out=$(wrk -t2 -c$conns -d${secs}s --latency -s tools/bench/noop.lua "$url")
  c1=$(ticks)
  if [ -n "${PERF_OUT:-}" ] && [ "$1" = 1 ]; then perf record -F 999 -g -o "$PERF_OUT" -p $pid -- sleep "$secs" >/dev/null 2>&1 & perf_pid=$!; fi
  measured_out=$(wrk -t2 -c$conns -d${secs}s --latency -s "$2" "$url")
  c2=$(ticks)
  [ -n "$perf_pid" ] && wait "$perf_pid" || true
  cpu_ratio=$(python3 -c "print(f'{($c1 - $c0) / $(echo "$noop_out" | requests) / (($c2 - $c1) / $(echo "$measured_out" | requests)):.3f}')")
}
