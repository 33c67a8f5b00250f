#!/bin/bash
# Create (once) a virtualenv with upstream Nova and the test requirements its
# fakelibvirt needs, for the control plane comparison of the benchmarks.
# Usage: benchmarks/upstream-venv.sh [VENV]  (default /tmp/upstream-nova)
# Upstream Nova 30.0.0 (2024.2) is the first with hw_firmware_stateless.
set -euo pipefail
venv=${1:-/tmp/upstream-nova}
if "$venv/bin/python" -c 'import nova.tests.fixtures.libvirt' 2>/dev/null; then
    echo "upstream Nova: using $venv"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q 'nova>=30.0.0' testtools oslotest ddt \
    requests-mock wsgi-intercept
echo "upstream Nova: installed in $venv"
