#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (issue 19): Debian's server, initdb in a
# directory of our own, our own port and socket, SCRAM passwords on TCP.
#   tools/postgres.sh start DIR PORT   prints the storage URL of database `registryd`
#   tools/postgres.sh stop DIR         stops it and removes DIR
#   tools/postgres.sh down DIR         stops the server, keeping its data (an outage)
#   tools/postgres.sh up DIR           starts it again with the same settings
#   tools/postgres.sh standby PRIMARY_DIR DIR PORT
#                                      a streaming standby of PRIMARY_DIR's cluster, made the
#                                      primary's synchronous standby (every commit waits for it)
#   tools/postgres.sh crash DIR        SIGKILLs the server and every backend (a dead machine)
#   tools/postgres.sh promote DIR PORT promotes a standby and restarts it on PORT (the address
#                                      a failover manager's virtual IP or proxy moves over)
# The server refuses to run as root, so as root it runs as the `postgres` user the package made.
set -euo pipefail
command=${1:?start|stop}
dir=${2:?directory}
bin_dir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_postgres=()
[ "$(id -u)" = "0" ] && as_postgres=(runuser -u postgres --)
case "$command" in
start)
  port=${3:?port}
  if [ -z "$(bin_dir)" ] || [ ! -x "$(bin_dir)/initdb" ]; then
    SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
  fi
  bin=$(bin_dir)
  mkdir -p "$dir"
  [ "$(id -u)" = "0" ] && chown postgres "$dir"
  printf 'registryd-test\n' > "$dir/.pw" && chmod 644 "$dir/.pw"
  "${as_postgres[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$dir/.pw" --no-sync >"$dir/initdb.log"
  # fsync off for the tests: a test cluster that dies with the machine is thrown away anyway (a
  # crashed process, which the tests do cause, loses nothing that was committed). Benchmarks
  # set REGISTRYD_PG_DURABLE=1: fsync on, as in production.
  fsync=off; [ -n "${REGISTRYD_PG_DURABLE:-}" ] && fsync=on
  echo "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=$fsync -c max_connections=200" > "$dir/options"
  "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$(cat "$dir/options")" start >/dev/null
  "${as_postgres[@]}" "$bin/psql" -q -h "$dir" -p "$port" -U postgres -d postgres \
    -c "CREATE ROLE registryd LOGIN PASSWORD 'registryd-test'" -c "CREATE DATABASE registryd OWNER registryd" >/dev/null
  echo "postgres://registryd:registryd-test@127.0.0.1:$port/registryd"
  ;;
down)
  "${as_postgres[@]}" "$(bin_dir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  ;;
up)
  "${as_postgres[@]}" "$(bin_dir)/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$(cat "$dir/options")" start >/dev/null
  ;;
standby)
  primary=$dir; dir=${3:?standby directory}; port=${4:?port}
  bin=$(bin_dir)
  primary_port=$(sed -E 's/.*-c port=([0-9]+).*/\1/' "$primary/options")
  mkdir -p "$dir"
  [ "$(id -u)" = "0" ] && chown postgres "$dir"
  "${as_postgres[@]}" "$bin/pg_basebackup" -h "$primary" -p "$primary_port" -U postgres -D "$dir/data" -R -X stream -c fast >/dev/null
  sed -E "s/-c port=[0-9]+/-c port=$port/; s#unix_socket_directories=[^ ]+#unix_socket_directories=$dir#" "$primary/options" > "$dir/options"
  "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "$(cat "$dir/options")" start >/dev/null
  # Synchronous: a commit on the primary returns only once this standby has it.
  "${as_postgres[@]}" "$bin/psql" -q -h "$primary" -p "$primary_port" -U postgres -d postgres \
    -c "ALTER SYSTEM SET synchronous_standby_names = '*'" -c "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 100); do
    state=$("${as_postgres[@]}" "$bin/psql" -tA -h "$primary" -p "$primary_port" -U postgres -d postgres -c "SELECT sync_state FROM pg_stat_replication")
    [ "$state" = "sync" ] && break
    sleep 0.1
  done
  [ "$state" = "sync" ] || { echo "the standby did not become synchronous ($state)" >&2; exit 1; }
  ;;
crash)
  pid=$(head -1 "$dir/data/postmaster.pid")
  # The postmaster and all its backends at once, as a machine that lost power.
  pkill -9 -P "$pid" || true
  kill -9 "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  ;;
promote)
  port=${3:?port}
  bin=$(bin_dir)
  "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -w promote >/dev/null
  sed -i -E "s/-c port=[0-9]+/-c port=$port/" "$dir/options"
  "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -m fast -o "$(cat "$dir/options")" restart >/dev/null
  ;;
stop)
  bin=$(bin_dir)
  [ -d "$dir/data" ] && "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start DIR PORT | stop DIR | down DIR | up DIR | standby PRIMARY_DIR DIR PORT | crash DIR | promote DIR PORT" >&2
  exit 2
  ;;
esac
