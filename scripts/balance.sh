#!/usr/bin/env bash
# Shard balance of each flow key on the corpus's larger captures: for N shards, the largest shard's
# bytes over the mean shard's (1.00 is perfect balance; N means everything on one shard).
# Usage: scripts/balance.sh [SHARDS...]   (default 4 8; needs target/release/shardcap)
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${SHARDCAP_CORPUS:-../shared/corpus}"
bin=target/release/shardcap
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
shards=("${@:-4 8}")
read -r -a shards <<<"${shards[*]}"
files=$(awk -F'\t' 'NR > 1 && $7 > 1000000 { print $1 }' "$corpus/MANIFEST.tsv")
printf '%-58s' capture
for n in "${shards[@]}"; do for h in 2-tuple 5-tuple; do printf ' %9s' "$h/$n"; done; done
echo
for f in $files; do
  printf '%-58s' "$f"
  for n in "${shards[@]}"; do
    for h in 2-tuple 5-tuple; do
      rm -f "$tmp"/*
      "$bin" run -q --progress never -n "$n" --hash "$h" -o "file:$tmp/s-{shard}.pcap" \
        --stats-file "$tmp/stats.json" "$corpus/$f" || [ $? -eq 3 ]   # 3: a damaged tail, skipped
      python3 -c 'import json,sys; s=[x["bytes"] for x in json.load(open(sys.argv[1]))["shards"]]; print(" %9.2f" % (max(s) / (sum(s) / len(s))), end="")' "$tmp/stats.json"
    done
  done
  echo
done
