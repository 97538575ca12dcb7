#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the build needs, lints the formatting, builds everything with
# warnings as errors and strict import checks, starts a throwaway PostgreSQL cluster (Debian's
# server, tools/postgres.sh) for the PostgreSQL backend's suites, runs every Swift test target,
# then drives real `registryd serve` processes (on LMDB and on PostgreSQL) with Microsoft's Python
# SDKs (azure-iot-hub 2.7.0, azure-iot-device 2.14.0, in virtual environments), the device SDK
# also through a RabbitMQ broker that asks registryd (tools/rabbitmq.sh), and the operator
# console in headless chromium (Selenium).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
# The end-to-end suites make test certificates with the openssl command.
if ! command -v openssl >/dev/null; then
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl >/dev/null
fi
# The shipped systemd unit must pass systemd-analyze verify (only the uninstalled binary may be missing).
tools/check-unit.sh
bash -n tools/install.sh
# One style: the toolchain's formatter with the repository's .swift-format, warnings as failures.
swift format lint --strict --recursive --configuration .swift-format Sources Tests
swift build --build-tests -Xswiftc -warnings-as-errors --explicit-target-dependency-import-check error
# A throwaway PostgreSQL cluster for the PostgreSQL backend's tests (the store conformance suite
# runs on it; issue 19), stopped and removed when this script ends.
pg_dir=$(mktemp -d /tmp/registryd-pg.XXXXXX)
# The end-to-end suites' temporary directories (data directories, their own PostgreSQL clusters
# and RabbitMQ nodes, logs) are made under one directory (TMPDIR, which Python's tempfile
# follows), removed with the cluster when this script ends: runs do not pile up in /tmp.
e2e_tmp=$(mktemp -d /tmp/registryd-e2e.XXXXXX)
chmod 711 "$e2e_tmp"  # the PostgreSQL server (user postgres) reaches its clusters inside
trap 'tools/postgres.sh stop "$pg_dir"; rm -rf "$e2e_tmp"' EXIT
REGISTRYD_TEST_POSTGRES_URL=$(tools/postgres.sh start "$pg_dir" "${REGISTRYD_TEST_POSTGRES_PORT:-54329}")
export REGISTRYD_TEST_POSTGRES_URL
# Bounded, so a hung test fails the run instead of eating CI's time.
timeout 1800 swift test --skip-build "$@"

# Each end-to-end suite has its own virtual environment (the service and device SDKs pin
# different dependencies), rebuilt only when its requirements change.
venv_for() {
  local venv=".build/$1-venv" requirements="Tests/$1-e2e/requirements.txt"
  local stamp="$venv/.requirements.sha256" want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ ! -x "$venv/bin/pytest" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    if ! python3 -m venv "$venv" 2>/dev/null; then
      # Debian's system Python keeps venv in a separate package.
      SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
      $SUDO apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv" >&2
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
    echo "$want" > "$stamp"
  fi
  echo "$venv"
}
sdk=$(venv_for sdk)
device=$(venv_for device)
export REGISTRYD="$PWD/.build/debug/registryd"
# The device suite calls the service SDK in its own environment (Tests/sdk-e2e/service_sdk.py).
export REGISTRYD_SDK_PYTHON="$PWD/$sdk/bin/python"
# Microsoft's service SDK against the registry API, then the device SDK against device auth and
# through a real MQTT broker (a private RabbitMQ node that tools/rabbitmq.sh starts per suite;
# Debian's rabbitmq-server, installed here if missing, its system service left stopped).
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || {
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rabbitmq-server >/dev/null
  $SUDO systemctl disable --now rabbitmq-server >/dev/null 2>&1 || $SUDO service rabbitmq-server stop >/dev/null 2>&1 || true
}
export TMPDIR="$e2e_tmp"
timeout 900 "$sdk/bin/pytest" -q Tests/sdk-e2e
timeout 600 "$device/bin/pytest" -q Tests/device-e2e
# The operator console in a real browser: Debian's chromium and its driver, through Selenium.
command -v chromedriver >/dev/null || {
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
}
console=$(venv_for console)
timeout 600 "$console/bin/pytest" -q Tests/console-e2e
