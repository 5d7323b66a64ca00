#!/usr/bin/env bash
# Install Debian packages, as root or through sudo; explain what to do where apt is missing.
set -euo pipefail
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-get not found: install '$*' with your system's package manager," >&2
  echo "or point haq at your own files (see docs/quickstart.md)." >&2
  exit 1
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"
