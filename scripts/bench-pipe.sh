#!/usr/bin/env bash
# Throughput of one FIFO output drained by `cat > /dev/null`, by --pipe-size.
#
# Generates SIZE of rotated captures (2 sensors) with `shardcap generate`, warms the page cache,
# then streams them to one FIFO with each pipe size, ROUNDS times, interleaved (machine noise hits
# every size alike), and prints the median wall time, MB/s and CPU time (shardcap and cat).
#
#   scripts/bench-pipe.sh [SIZE]     SIZE like 1G (default)
#   env: BENCH_DIR (default /tmp/shardcap-bench-pipe), ROUNDS (default 5),
#        SIZES (default "16K 64K 256K 1M"), SHARDCAP_BIN=PATH (default: build target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-rounds.sh
size=${1:-1G}
rounds=${ROUNDS:-5}
sizes=${SIZES:-16K 64K 256K 1M}
dir=${BENCH_DIR:-/tmp/shardcap-bench-pipe}
bin=$(shardcap_binary)
cleanup() {
  jobs -p | xargs -r kill 2> /dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir -p "$dir/in"
bytes=$(numfmt --from=iec "$size")
"$bin" generate --out "$dir/in" --sensors 2 --files-per-sensor 4 --size $((bytes / 8)) -q
cat "$dir"/in/* > /dev/null
cat "$dir"/in/* > /dev/null
total=$(du -cb "$dir"/in/* | tail -1 | cut -f1)

declare -A wall cpu
for ((r = 0; r < rounds; r++)); do
  for ps in $sizes; do
    fifo="$dir/out.pipe"
    rm -f "$fifo"
    mkfifo "$fifo"
    cat "$fifo" > /dev/null &
    reader=$!
    t0=$(date +%s.%N)
    c0=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
    "$bin" run -q -n 1 --order given --pipe-size "$ps" -o "fifo:$fifo" "$dir"/in/*
    wait "$reader"
    t1=$(date +%s.%N)
    c1=$(awk '{print $14 + $15 + $16 + $17}' /proc/$$/stat)
    wall[$ps]+="$(echo "$t1 - $t0" | bc) "
    cpu[$ps]+="$(echo "($c1 - $c0) / $(getconf CLK_TCK)" | bc -l) "
  done
done

printf '%-10s %10s %10s %12s\n' pipe-size wall-s MB/s cpu-s
for ps in $sizes; do
  w=$(echo "${wall[$ps]}" | median)
  c=$(echo "${cpu[$ps]}" | median)
  printf '%-10s %10.2f %10.0f %12.2f\n' "$ps" "$w" "$(echo "$total / $w / 1000000" | bc -l)" "$c"
done
echo "($((total / 1000000)) MB, $rounds rounds, medians)"
