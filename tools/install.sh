#!/usr/bin/env bash
# Installs registryd for production on Debian (as root or through sudo): a release build in
# /usr/local/bin, the `registryd` system user, the systemd unit, /etc/registryd/registryd.json
# (kept if present) and the data directory /var/lib/registryd (owner-only). Then
#   systemctl enable --now registryd
# See README "Production".
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" != "0" ] && SUDO=sudo
tools/install-deps.sh
swift build -c release --product registryd
$SUDO install -m 0755 .build/release/registryd /usr/local/bin/registryd
if ! id registryd >/dev/null 2>&1; then
  $SUDO adduser --system --group --home /var/lib/registryd --no-create-home --shell /usr/sbin/nologin registryd
fi
$SUDO install -d -m 0700 -o registryd -g registryd /var/lib/registryd
$SUDO install -d -m 0755 /etc/registryd
if [ ! -e /etc/registryd/registryd.json ]; then
  echo '{}' | $SUDO tee /etc/registryd/registryd.json >/dev/null
  $SUDO chmod 0640 /etc/registryd/registryd.json
  $SUDO chgrp registryd /etc/registryd/registryd.json
fi
/usr/local/bin/registryd config check --config /etc/registryd/registryd.json
$SUDO install -d -m 0755 /usr/local/share/doc/registryd
$SUDO install -m 0644 README.md /usr/local/share/doc/registryd/README.md
$SUDO install -m 0644 tools/systemd/registryd.service /etc/systemd/system/registryd.service
$SUDO systemctl daemon-reload
echo "installed; start with: sudo systemctl enable --now registryd"
echo "the local CA clients must trust: /var/lib/registryd/tls/ca.pem (after the first start)"
