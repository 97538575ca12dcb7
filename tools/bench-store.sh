#!/usr/bin/env bash
# Store benchmark (by hand, not in CI): durable creates through the writer at concurrency 1, 16
# and 256 against raw LMDB doing the same puts at the same batch sizes, with an fsync probe.
# Run it three times and report the median, as DESIGN §9 asks.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product registryd-bench
exec .build/release/registryd-bench store "$@"
