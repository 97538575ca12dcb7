#!/usr/bin/env bash
# Installs the system packages registryd builds against (Debian): LMDB's headers and library.
set -euo pipefail
if pkg-config --exists lmdb 2>/dev/null; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq liblmdb-dev pkg-config >/dev/null
pkg-config --exists lmdb
