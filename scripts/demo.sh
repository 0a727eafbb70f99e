#!/usr/bin/env bash
# Generates two sensors' rotated captures, merges and shards them into N flow-consistent pcap
# files with `shardcap run`, and prints what each shard received (via `shardcap scan`).
# Usage: scripts/demo.sh [SHARDS]   (default 4)
set -euo pipefail
cd "$(dirname "$0")/.."
shards=${1:-4}

cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-target}/release/shardcap"
work=$(mktemp -d "${TMPDIR:-/tmp}/shardcap-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/in" "$work/out"

echo "== generate: 2 sensors, 6 files of 2 MiB each"
"$bin" generate --out "$work/in" --sensors 2 --files-per-sensor 6 --size 2M --duration 60s --seed 1

echo "== run: merge by packet time, $shards shards by 5-tuple"
"$bin" run -n "$shards" -o "file:$work/out/shard-{shard}.pcap" "$work/in"

# path packets bytes first_ts last_ts, one line per capture, from scan's JSON lines.
fields() {
  sed -E 's/.*"path":"([^"]*)".*"first_ts":([0-9]+),"last_ts":([0-9]+),"packets":([0-9]+),"bytes":([0-9]+).*/\1 \4 \5 \2 \3/'
}
in_packets=$("$bin" scan "$work/in" | fields | awk '{n += $2} END {print n}')
echo "== shards (scan)"
"$bin" scan "$work/out" | fields | awk -v total="$in_packets" '
  { name = $1; sub(".*/", "", name); n += $2
    printf "%-14s %8d packets %11d bytes  %.6f .. %.6f\n", name, $2, $3, $4 / 1e9, $5 / 1e9 }
  END { printf "%-14s %8d packets (inputs: %d)%s\n", "total", n, total,
      n == total ? "" : "  MISMATCH" }'
