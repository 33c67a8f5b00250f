#!/bin/bash
# Create (once) a virtualenv with upstream Nova 34.0.0 (2026.2), installed as
# a deployment installs it, for the comparisons of the benchmarks: the sdist
# from PyPI checked against its sha256, the release's upper constraints and
# libvirt-python (built against this host's libvirt). No test requirement is
# installed: the benchmark imports no test code of upstream, and placement is
# served to it over HTTP by the benchmark process.
#
# Usage: benchmarks/upstream-venv.sh [VENV] [CONSTRAINTS]
#   VENV         default /tmp/upstream-nova
#   CONSTRAINTS  default $NOVA_BENCH_CONSTRAINTS, else the 2026.2 pins the
#                tree carries for that release (series/2026.2/); without
#                a file the dependencies install unpinned (said so).
set -euo pipefail
version=34.0.0
sha256=919eef77cda4ce0cc4746a5853b5d9341ebd0ae37bc8b1939eb77d17727c00df
here=$(cd "$(dirname "$0")/.." && pwd)
venv=$(realpath -m "${1:-/tmp/upstream-nova}")
constraints=${2:-${NOVA_BENCH_CONSTRAINTS:-$here/series/2026.2/upper-constraints.txt}}

# From / so that no nova package in the current directory shadows the
# virtualenv's.
if (cd / && "$venv/bin/python" -c '
import sys, nova.version, libvirt
sys.exit(nova.version.version_string() != sys.argv[1])' "$version" \
        2>/dev/null); then
    echo "upstream Nova $version: using $venv"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" download -q --no-deps --no-binary :all: -d "$work" \
    "nova==$version"
sdist="$work/nova-$version.tar.gz"
echo "$sha256  $sdist" | sha256sum -c --quiet
pin=()
if [ -f "$constraints" ]; then
    # Pins taken weeks before a release can fall behind what it requires
    # (34.0.0 wants keystoneauth1>=5.16.0 where the 2026.2 pins have
    # 5.15.0): leave out the pins the release's own requirements exclude,
    # keep every other one.
    tar -xzf "$sdist" -C "$work" "nova-$version/requirements.txt"
    "$venv/bin/pip" install -q packaging
    "$venv/bin/python" - "$work/nova-$version/requirements.txt" \
            "$constraints" "$work/pins.txt" <<'PY'
import sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
reqs = {}
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if line:
        req = Requirement(line)
        reqs[canonicalize_name(req.name)] = req.specifier
with open(sys.argv[3], 'w') as out:
    for line in open(sys.argv[2]):
        name, sep, pinned = line.strip().partition('===')
        spec = reqs.get(canonicalize_name(name)) if sep else None
        pinned = pinned.split(';')[0]
        if spec is not None and not spec.contains(pinned, prereleases=True):
            print('upstream Nova: dropped pin %s===%s (requires %s%s)' % (
                name, pinned, name, spec))
            continue
        out.write(line)
PY
    pin=(-c "$work/pins.txt")
    echo "upstream Nova: pins from $constraints"
else
    echo "upstream Nova: no constraints file ($constraints); unpinned"
fi
"$venv/bin/pip" install -q "${pin[@]}" "$sdist" libvirt-python
echo "upstream Nova $version: installed in $venv"
