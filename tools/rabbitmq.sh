#!/usr/bin/env bash
# A throwaway RabbitMQ node for the broker tests (issue 20): Debian's rabbitmq-server with its MQTT,
# HTTP auth backend and event exchange plugins, in a directory of our own, with its own node
# name, its own epmd and its own ports, so that two of them (or one beside a system broker) never
# clash. MQTT clients are authenticated and authorized by an HTTP server (registryd); a local
# internal user, the observer, may connect over AMQP or MQTT without asking that server (to read
# the event exchange, or to subscribe to telemetry). tools/rabbitmq-contract.md says what the
# broker sends.
#   tools/rabbitmq.sh start DIR --auth-url URL [--tls-cert CERT --tls-key KEY --tls-ca CA
#                    [--mqtts-host ADDR] [--mqtts-port PORT]] [--auth-ca CA]
#                    [--auth-cert CERT --auth-key KEY] [--anonymous]
#       starts the node and prints one line of shell-sourceable variables:
#       NODE=… AMQP_PORT=… MQTT_PORT=… MQTTS_HOST=… MQTTS_PORT=… EPMD_PORT=… MANAGEMENT_PORT=…
#       OBSERVER_USER=… OBSERVER_PASS=… (the observer also administers the management API;
#       MQTTS_* empty without --tls-*). The MQTT-over-TLS listener is on
#       ADDR:8883 by default (ADDR 127.0.0.1): Microsoft's device SDK always connects to port 8883
#       (azure-iot-device hard-codes it; only the host can be changed, with gateway_hostname), so
#       two nodes side by side use two loopback addresses (127.0.0.2, …: all of 127/8 is local on
#       Linux) and certificates naming them; --mqtts-port 0 picks a free port for other clients.
#       The AMQP and plain MQTT listeners, the Erlang distribution port and the node's private
#       epmd get free ports on 127.0.0.1. URL is the auth server's base: the broker posts to
#       URL/registry/auth/rabbitmq/{user,vhost,resource,topic}. An https URL is checked against
#       --auth-ca (default: --tls-ca); --auth-cert/--auth-key make the broker present a client
#       certificate to it. --anonymous turns authentication off instead (MQTT clients without
#       credentials are let in; the baseline of tools/bench-broker.sh).
#   tools/rabbitmq.sh stop DIR        stops the node and its epmd and removes DIR (safe when
#                                     nothing runs, and the cleanup after a failed start)
#   tools/rabbitmq.sh ctl DIR ARGS…   rabbitmqctl against the node (e.g. list_connections)
# The node runs as the calling user (root too: RabbitMQ itself does not refuse root; only
# Debian's /usr/sbin wrappers switch to the `rabbitmq` user and write to /var/log/rabbitmq, so we
# call the scripts under /usr/lib/rabbitmq/bin instead). REGISTRYD_RMQ_LOG_LEVEL=debug logs the
# HTTP backend's requests and answers (auth_backend_http: POST …, response code is …).
set -euo pipefail
command=${1:?start|stop|ctl}
dir=${2:?directory}
shift 2
rmq_bin=/usr/lib/rabbitmq/bin

# Every rabbit command (server and CLI) sees the same private environment: the cookie lives in
# DIR (HOME), the CLI finds the node through DIR's epmd (ERL_EPMD_PORT), and nothing is read from
# or written to /etc/rabbitmq, /var/lib/rabbitmq or /var/log/rabbitmq. The VM's schedulers do not
# busy-wait (+sbwt none …): the node shares small machines with builds and test suites.
rmq_env() {
  local epmd_port
  epmd_port=$(cat "$dir/epmd_port")
  env HOME="$dir" ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_NODENAME="$(cat "$dir/node")" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PLUGINS_EXPAND_DIR="$dir/plugins-expand" \
    RABBITMQ_PID_FILE="$dir/rabbit.pid" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$(cat "$dir/amqp_port")" \
    RABBITMQ_DIST_PORT="$(cat "$dir/dist_port")" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none -kernel inet_dist_use_interface {127,0,0,1}" \
    "$@"
}
ctl() { rmq_env "$rmq_bin/rabbitmqctl" -q -n "$(cat "$dir/node")" "$@"; }

# N free TCP ports on 127.0.0.1 (bound then released; the node binds them a moment later).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

case "$command" in
start)
  auth_url="" tls_cert="" tls_key="" tls_ca="" auth_ca="" auth_cert="" auth_key="" anonymous=""
  mqtts_host=127.0.0.1 mqtts_port=8883
  while [ $# -gt 0 ]; do
    case "$1" in
      --auth-url) auth_url=$2 ;;
      --tls-cert) tls_cert=$2 ;;
      --tls-key) tls_key=$2 ;;
      --tls-ca) tls_ca=$2 ;;
      --mqtts-host) mqtts_host=$2 ;;
      --mqtts-port) mqtts_port=$2 ;;
      --auth-ca) auth_ca=$2 ;;
      --auth-cert) auth_cert=$2 ;;
      --auth-key) auth_key=$2 ;;
      --anonymous) anonymous=1; shift; continue ;;
      *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
  done
  [ -n "$auth_url" ] || [ -n "$anonymous" ] || { echo "--auth-url (or --anonymous) is required" >&2; exit 2; }
  if [ ! -x "$rmq_bin/rabbitmq-server" ]; then
    SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
    # policy-rc.d or not, the package's own service must not keep running: we only run our nodes.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
    $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || $SUDO service rabbitmq-server stop >/dev/null 2>&1 || true
  fi
  [ -e "$dir/node" ] && { echo "$dir already holds a node (stop it first)" >&2; exit 1; }
  read -r amqp_port mqtt_port free_port dist_port epmd_port management_port <<<"$(free_ports 6)"
  if [ -z "$tls_cert" ]; then
    mqtts_host="" mqtts_port=""
  else
    [ -n "$tls_key" ] && [ -n "$tls_ca" ] || { echo "--tls-cert needs --tls-key and --tls-ca" >&2; exit 2; }
    if [ "$mqtts_port" = 0 ]; then
      mqtts_port=$free_port
    # SO_REUSEADDR as the broker binds it: a closed connection's TIME_WAIT does not block the
    # port, only a listener does.
    elif ! python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen()' "$mqtts_host" "$mqtts_port" 2>/dev/null; then
      echo "$mqtts_host:$mqtts_port is taken (another broker?): pass another --mqtts-host" >&2
      exit 1
    fi
  fi
  mkdir -p "$dir/log" "$dir/mnesia"
  dir=$(cd "$dir" && pwd)
  # The node name only has to be unique among the nodes of one epmd, and each node has its own
  # epmd; the hash still tells the nodes apart in `ps` and in logs.
  echo "registryd-$(printf %s "$dir" | sha1sum | cut -c1-10)@localhost" > "$dir/node"
  echo "$amqp_port" > "$dir/amqp_port"; echo "$dist_port" > "$dir/dist_port"; echo "$epmd_port" > "$dir/epmd_port"
  : > "$dir/rabbitmq-env.conf"
  head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$dir/.erlang.cookie"; chmod 400 "$dir/.erlang.cookie"
  observer_pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  # rabbitmq_management: its HTTP API lists the open connections, which `registryd
  # rabbitmq-bridge` turns into connection-state reports.
  echo '[rabbitmq_mqtt,rabbitmq_auth_backend_http,rabbitmq_event_exchange,rabbitmq_management].' > "$dir/enabled_plugins"
  auth_url=${auth_url%/}
  level=${REGISTRYD_RMQ_LOG_LEVEL:-info}
  cat > "$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$amqp_port
log.file = $dir/log/rabbit.log
log.file.level = $level
log.console = false
# The observer: an internal user created on first boot (full rights on vhost /).
default_user = registryd-observer
default_pass = $observer_pass
# Internal first: the observer logs in without registryd; any other name is unknown to the
# internal backend (refused), so the HTTP backend is asked next and decides alone (authentication
# and authorization: each user is authorized by the backend that authenticated it).
auth_backends.1 = internal
auth_backends.2 = http
auth_http.http_method = post
auth_http.user_path = $auth_url/registry/auth/rabbitmq/user
auth_http.vhost_path = $auth_url/registry/auth/rabbitmq/vhost
auth_http.resource_path = $auth_url/registry/auth/rabbitmq/resource
auth_http.topic_path = $auth_url/registry/auth/rabbitmq/topic
auth_http.request_timeout = 5000
auth_http.connection_timeout = 5000
mqtt.listeners.tcp.default = 127.0.0.1:$mqtt_port
management.tcp.ip = 127.0.0.1
management.tcp.port = $management_port
mqtt.allow_anonymous = false
mqtt.vhost = /
mqtt.exchange = amq.topic
# Small machines: no disk alarm for a nearly full test disk, no memory alarm from a busy build.
disk_free_limit.absolute = 1MB
vm_memory_high_watermark.relative = 0.8
EOF
  if [ -n "$anonymous" ]; then
    # The baseline of tools/bench-broker.sh: the same broker with authentication off (MQTT
    # clients without credentials log in as the observer; nobody asks registryd).
    sed -i '/^auth_backends.2 = http$/d; /^auth_http\./d; s/^mqtt.allow_anonymous = false$/mqtt.allow_anonymous = true/' "$dir/rabbitmq.conf"
    printf 'mqtt.default_user = registryd-observer\nmqtt.default_pass = %s\n' "$observer_pass" >> "$dir/rabbitmq.conf"
  fi
  if [ -n "$tls_cert" ]; then
    cat >> "$dir/rabbitmq.conf" <<EOF
mqtt.listeners.ssl.default = $mqtts_host:$mqtts_port
ssl_options.cacertfile = $(realpath "$tls_ca")
ssl_options.certfile = $(realpath "$tls_cert")
ssl_options.keyfile = $(realpath "$tls_key")
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
EOF
  fi
  # Settings 3.10's rabbitmq.conf schema does not know go to advanced.config:
  # - ignore_colons_in_username: otherwise a colon in the MQTT user name splits it into
  #   "vhost:user" at the last colon, and Azure device ids may contain ':' (device `a:b` would ask
  #   for vhost `{host}/a` and be refused); with it every device lands in mqtt.vhost.
  # - the HTTP backend's TLS options (checked against the auth CA, optional client certificate).
  auth_ca=${auth_ca:-$tls_ca}
  ssl=""
  if [[ $auth_url == https:* ]]; then
    [ -n "$auth_ca" ] || { echo "an https --auth-url needs --auth-ca or --tls-ca" >&2; exit 2; }
    ssl="{cacertfile, \"$(realpath "$auth_ca")\"}, {verify, verify_peer}, {depth, 3},
       {customize_hostname_check, [{match_fun, public_key:pkix_verify_hostname_match_fun(https)}]}"
    if [ -n "$auth_cert" ]; then
      ssl="$ssl, {certfile, \"$(realpath "$auth_cert")\"}, {keyfile, \"$(realpath "$auth_key")\"}"
    fi
    ssl=", {ssl_options, [$ssl]}"
  fi
  cat > "$dir/advanced.config" <<EOF
[{rabbitmq_mqtt, [{ignore_colons_in_username, true}]},
 {rabbitmq_auth_backend_http, [{http_method, post}$ssl]}].
EOF
  # The server in the background of its own session (setsid), so a stop of the calling shell's
  # job does not take it down mid-test. Ready is the log's "Server startup complete" (the CLI's
  # `wait` would sit out its whole timeout on a node that died at boot, and each CLI call costs a
  # second of CPU); `await_startup` then confirms it through the CLI, as the tests will use it.
  (cd "$dir" && exec env ERL_CRASH_DUMP="$dir/log/erl_crash.dump" bash -c "$(declare -f rmq_env); dir='$dir'; rmq_env setsid '$rmq_bin/rabbitmq-server'") \
    >"$dir/log/server.out" 2>&1 < /dev/null &
  server=$!
  echo "$server" > "$dir/server.pid"
  for _ in $(seq 180); do
    grep -qs "Server startup complete" "$dir/log/rabbit.log" && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.5
  done
  if ! grep -qs "Server startup complete" "$dir/log/rabbit.log" || ! ctl await_startup --timeout 30 >/dev/null 2>&1; then
    echo "rabbitmq node $(cat "$dir/node") did not start; its logs:" >&2
    tail -n 40 "$dir/log/server.out" "$dir/log/rabbit.log" >&2 2>/dev/null || true
    exit 1
  fi
  echo "NODE=$(cat "$dir/node") AMQP_PORT=$amqp_port MQTT_PORT=$mqtt_port MQTTS_HOST=$mqtts_host MQTTS_PORT=$mqtts_port EPMD_PORT=$epmd_port MANAGEMENT_PORT=$management_port OBSERVER_USER=registryd-observer OBSERVER_PASS=$observer_pass"
  ;;
ctl)
  ctl "$@"
  ;;
stop)
  if [ -e "$dir/node" ]; then
    # `stop PIDFILE` returns once the VM has exited (the pid file exists only once the node has
    # booted; without one the CLI would wait for it forever). Bounded; what still runs is killed.
    if [ -s "$dir/rabbit.pid" ]; then
      timeout 60 bash "$0" ctl "$dir" stop "$dir/rabbit.pid" >/dev/null 2>&1 || true
    fi
    for pid in $(cat "$dir/rabbit.pid" "$dir/server.pid" 2>/dev/null); do
      # only if that pid is still ours (a pid can be reused once the node has exited)
      grep -qs -e rabbit -e "$dir" "/proc/$pid/cmdline" && kill -9 "$pid" 2>/dev/null || true
    done
    # The node's own epmd (started by the VM on EPMD_PORT) outlives it; stop exactly that one.
    ERL_EPMD_PORT=$(cat "$dir/epmd_port") timeout 10 epmd -kill >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: $0 start DIR --auth-url URL [--tls-cert CERT --tls-key KEY --tls-ca CA [--mqtts-host ADDR] [--mqtts-port PORT]] [--auth-ca CA] [--auth-cert CERT --auth-key KEY] | stop DIR | ctl DIR ARGS…" >&2
  exit 2
  ;;
esac
