#!/usr/bin/env bash
# Verifies systemd/mesero.service with `systemd-analyze verify`.
# The real ExecStart (/usr/bin/mesero) is not installed on a CI or build
# machine, so a throwaway copy points ExecStart at /bin/true; everything
# else (directives, values, unit references) is checked as written.
# Usage: scripts/verify-unit.sh [path/to/mesero.service]
set -euo pipefail
unit=${1:-"$(dirname "$0")/../systemd/mesero.service"}
grep -q '^ExecStart=/usr/bin/mesero ' "$unit" || { echo "error: ExecStart line not found in $unit" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Same file name, so the unit name matches (verify derives it from the name).
sed 's|^ExecStart=/usr/bin/mesero |ExecStart=/bin/true |' "$unit" > "$tmp/mesero.service"
out=$(systemd-analyze verify "$tmp/mesero.service" 2>&1) || { echo "$out" >&2; exit 1; }
# verify exits 0 on some warnings (unknown keys); fail on anything printed
# about our unit.
if grep -F "mesero.service" <<<"$out"; then
  echo "error: systemd-analyze reported problems (above)" >&2
  exit 1
fi
echo "ok: $unit verifies"
