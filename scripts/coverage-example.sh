#!/usr/bin/env bash
# Builds a pile of four generated sensors on two taps with the usual blemishes (lost files, a file
# cut mid-record, a restarted writer overlapping itself, a copy and a partial copy in spare/), draws
# its coverage picture with `shardcap scan --report`, and renders it with headless Chromium.
# Usage: scripts/coverage-example.sh [OUT.png]   (default docs/coverage.png)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-docs/coverage.png}")

cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/shardcap"
work=$(mktemp -d "${TMPDIR:-/tmp}/shardcap-coverage.XXXXXX")
trap 'rm -rf "$work"' EXIT
pile="$work/pile"

"$bin" generate -q --out "$pile/tap-north" --sensors 2 --files-per-sensor 20 --size 256K \
  --duration 30m --seed 3 >/dev/null
"$bin" generate -q --out "$pile/tap-south" --sensors 2 --files-per-sensor 16 --size 256K \
  --duration 30m --seed 4 >/dev/null
rm "$pile/tap-north/sensorB.pcap6" "$pile/tap-north/sensorB.pcap7" "$pile/tap-south/sensorA.pcap11"
truncate -s 100K "$pile/tap-south/sensorB.pcap4"
editcap -t -300 "$pile/tap-north/sensorA.pcap12" "$pile/tap-north/sensorA.pcap99"
mkdir "$pile/spare"
cp "$pile/tap-north/sensorA.pcap3" "$pile/spare/collected.pcap"
editcap -r "$pile/tap-south/sensorA.pcap2" "$pile/spare/partial.pcap" 1-100

"$bin" -q scan --report "$work/coverage.svg" "$pile" >/dev/null || true
height=$(sed -nE '1s/.*<svg [^>]*height="([0-9]+)".*/\1/p' "$work/coverage.svg")
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
  --user-data-dir="$work/profile" --screenshot="$out" --window-size="1200,$height" \
  "file://$work/coverage.svg" 2>/dev/null
echo "$out"
