#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (issue 19): Debian's server, initdb in a
# directory of our own, our own port and socket, SCRAM passwords on TCP.
#   tools/postgres.sh start DIR PORT   prints the storage URL of database `registryd`
#   tools/postgres.sh stop DIR         stops it and removes DIR
#   tools/postgres.sh down DIR         stops the server, keeping its data (an outage)
#   tools/postgres.sh up DIR           starts it again with the same settings
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
  # fsync off: a test cluster that dies with the machine is thrown away anyway (a crashed
  # process, which the tests do cause, loses nothing that was committed).
  echo "-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c max_connections=200" > "$dir/options"
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
stop)
  bin=$(bin_dir)
  [ -d "$dir/data" ] && "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start DIR PORT | stop DIR | down DIR | up DIR" >&2
  exit 2
  ;;
esac
