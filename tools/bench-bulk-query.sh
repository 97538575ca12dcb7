#!/usr/bin/env bash
# Bulk-by-query benchmark (by hand, not in CI): a bulk-by-query job's engine changing every one
# of N devices (default 100,000) against an import of the same N updates, in one store and one
# run, at the same batch size; reports identities changed per second and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
swift build -c release --product registryd-bench
exec .build/release/registryd-bench bulk-query "$@"
