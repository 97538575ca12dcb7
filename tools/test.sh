#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the build needs, builds everything with
# warnings as errors and strict import checks, then runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build --build-tests -Xswiftc -warnings-as-errors --explicit-target-dependency-import-check error
swift test --skip-build "$@"
