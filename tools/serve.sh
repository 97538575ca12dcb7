#!/usr/bin/env bash
# Runs the daemon: installs what the build needs, builds in release mode, starts
# `registryd serve` with the arguments given (default data directory ./data).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product registryd
exec .build/release/registryd serve "$@"
