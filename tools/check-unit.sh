#!/usr/bin/env bash
# Checks tools/systemd/registryd.service with `systemd-analyze verify` (Debian's systemd
# package, installed if missing). The only problem allowed is that the binary is not installed
# on this machine (/usr/local/bin/registryd); anything else fails.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null; then
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
  $SUDO apt-get install -y -qq systemd >/dev/null
fi
out=$(systemd-analyze verify tools/systemd/registryd.service 2>&1 || true)
problems=$(printf '%s\n' "$out" | grep -v '^$' | grep -v 'Command /usr/local/bin/registryd is not executable' || true)
if [ -n "$problems" ]; then
  printf 'systemd-analyze verify found problems:\n%s\n' "$problems" >&2
  exit 1
fi
echo "systemd unit: ok (${out:-no findings})"
