#!/bin/bash
# Install the system packages listed in bindep.txt through apt.
# Idempotent: installs only what bindep reports missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q bindep
if missing=$(bindep -b); then
    echo "bindep: all system packages present"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q $missing
