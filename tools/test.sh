#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the build needs, builds everything with
# warnings as errors and strict import checks, runs every Swift test target, then drives a real
# `registryd serve` with Microsoft's Python SDK (azure-iot-hub 2.7.0, in a virtual environment).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build --build-tests -Xswiftc -warnings-as-errors --explicit-target-dependency-import-check error
# Bounded, so a hung test fails the run instead of eating CI's time.
timeout 1800 swift test --skip-build "$@"

venv=.build/sdk-venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum Tests/sdk-e2e/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/pytest" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's system Python keeps venv in a separate package.
    SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
    $SUDO apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check -r Tests/sdk-e2e/requirements.txt
  echo "$want" > "$stamp"
fi
REGISTRYD="$PWD/.build/debug/registryd" timeout 900 "$venv/bin/pytest" -q Tests/sdk-e2e
