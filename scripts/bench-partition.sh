#!/usr/bin/env bash
# A node's throughput under `--partition K/M`: every node reads all the input and keeps 1/M of the
# packets (the others are hashed and skipped). Measures partition 0 of M = 1, 2, 4, 8 over the same
# input, against `cat` of the input to /dev/null in the same run, interleaved ROUNDS times; prints
# medians and the ratios to `cat` and to M = 1.
#
#   scripts/bench-partition.sh [SIZE]     SIZE like 1G (default), 500M
#   env: BENCH_DIR (default /tmp/shardcap-bench-partition): the generated inputs;
#        OUT_DIR (default /dev/shm/shardcap-bench-partition-out, tmpfs): the file outputs;
#        ROUNDS (default 3), SHARDS (default 4, N a node), KEEP=1 keeps the inputs,
#        SHARDCAP_BIN=PATH measures that binary instead of building target/release/shardcap;
#        CLUSTER=1 adds `run --cluster` with one node (a redis-server started in BENCH_DIR): the
#        whole job as one partition, and M = 4 partitions one after another (catalog, leases
#        and fencing included).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-rounds.sh
size=${1:-1G}
rounds=${ROUNDS:-3}
shards=${SHARDS:-4}
dir=${BENCH_DIR:-/tmp/shardcap-bench-partition}
out=${OUT_DIR:-/dev/shm/shardcap-bench-partition-out}
bin=$(shardcap_binary)
in="$dir/in"
redis_pid=
cleanup() {
  [ -n "$redis_pid" ] && kill "$redis_pid" 2> /dev/null
  rm -rf "$out" "$dir"/time-* "$dir"/redis
  [ "${KEEP:-0}" = 1 ] || rm -rf "$in"
  rmdir "$dir" 2> /dev/null || true
}
trap cleanup EXIT
mkdir -p "$in" "$out"
rm -f "$dir"/time-*

# Eight rotated files from two sensors.
file_size=$(( $(numfmt --from=iec "$size") / 8 ))
if [ "$(find "$in" -type f | wc -l)" -ne 8 ]; then
  rm -rf "${in:?}"/*
  "$bin" generate --out "$in" --sensors 2 --files-per-sensor 4 --size "$file_size" \
    --duration 300s --seed 1 > /dev/null
fi
mapfile -t files < <(find "$in" -type f | sort)
total=$(cat "${files[@]}" | wc -c)
cat "${files[@]}" > /dev/null
cat "${files[@]}" > /dev/null

cat_null() { cat "${files[@]}" > /dev/null; }
part() { "$bin" run -q --partition "0/$1" -n "$shards" -o "file:$out/shard-{global}.pcap" "${files[@]}"; }
part_1() { part 1; }
part_2() { part 2; }
part_4() { part 4; }
part_8() { part 8; }

cases=(cat_null part_1 part_2 part_4 part_8)
if [ "${CLUSTER:-0}" = 1 ]; then
  port=$(shuf -i 20000-60000 -n 1)
  mkdir -p "$dir/redis"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir/redis" \
    > /dev/null &
  redis_pid=$!
  until redis-cli -p "$port" ping > /dev/null 2>&1; do sleep 0.1; done
  cluster() { # M: a fresh job, its catalog sealed, then one node doing every partition
    local job
    job=bench-$(date +%s%N)
    "$bin" ctl -q --cluster "redis://127.0.0.1:$port" --job "$job" enqueue --seal "${files[@]}" > /dev/null
    "$bin" run -q --cluster "redis://127.0.0.1:$port" --job "$job" --partitions "$1" -n "$shards" \
      -o "file:$out/shard-{global}.pcap" --state "$out/state"
  }
  cluster_1() { cluster 1; }
  cluster_4() { cluster 4; }
  cases+=(cluster_1 cluster_4)
fi
time_rounds "$rounds" "$dir" "${cases[@]}"
declare -A med cpu
medians "$dir" "${cases[@]}"
printf '\nshardcap --partition 0/M: %d MB in %d files, -n %d a node, median of %d rounds\n' \
  $((total / 1000000)) "${#files[@]}" "$shards" "$rounds"
printf 'machine: %s cores, %s; load %s; %s\n\n' "$(nproc)" "$(uname -r)" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-44s %7s %11s %8s %8s %8s\n' case wall "read rate" "vs cat" "vs M=1" CPU
row() { # CASE LABEL
  awk -v t="${med[$1]}" -v c="${cpu[$1]}" -v cat="${med[cat_null]}" -v one="${med[part_1]}" \
    -v bytes="$total" -v label="$2" 'BEGIN {printf "%-44s %5.2f s %6.0f MB/s %7.2fx %7.2fx %6.2f s\n",
      label, t, bytes / 1e6 / t, t / cat, t / one, c}'
}
row cat_null "cat FILES > /dev/null"
for m in 1 2 4 8; do
  row "part_$m" "shardcap run --partition 0/$m -n $shards -o file:"
done
if [ "${CLUSTER:-0}" = 1 ]; then
  row cluster_1 "shardcap run --cluster, 1 partition"
  row cluster_4 "shardcap run --cluster, 4 partitions in turn"
fi
