#!/usr/bin/env bash
# The cost of --since/--until, --filter and --dedup against the plain run, measured in the same
# run (cases interleaved, ROUNDS times; medians of CPU time, user + system, and of wall time), and
# the start of a run over many small files with and without the catalog cache.
#
#   scripts/bench-select.sh [SIZE]   SIZE of the generated pile, like 512M (default)
#   env: BENCH_DIR (default /tmp/shardcap-bench-select), OUT_DIR (default /dev/shm/...: tmpfs),
#        ROUNDS (default 5), SHARDS (default 8), MANY_FILES (default 40000; 0 skips that part),
#        MANY_SIZE (default 4K): the size of each of those files,
#        SHARDCAP_BIN=PATH measures that binary instead of target/release/shardcap.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-rounds.sh
size=${1:-512M}
rounds=${ROUNDS:-5}
shards=${SHARDS:-8}
many=${MANY_FILES:-40000}
many_size=${MANY_SIZE:-4K}
dir=${BENCH_DIR:-/tmp/shardcap-bench-select}
out=${OUT_DIR:-/dev/shm/shardcap-bench-select-out}
bin=$(shardcap_binary)
command -v /usr/bin/time > /dev/null || { echo "bench: needs GNU time" >&2; exit 2; }
rm -rf "$dir" "$out"
mkdir -p "$dir" "$out"
trap 'rm -rf "$dir" "$out"' EXIT

# The pile: two sensors, 8 files each.
bytes=$(numfmt --from=iec "$size")
"$bin" generate --out "$dir/pile" --sensors 2 --files-per-sensor 8 --size $((bytes / 16)) \
  --duration 600s > /dev/null
cat "$dir"/pile/* > /dev/null
first=$("$bin" scan "$dir"/pile/* | sed -n 's/.*"first_ts":\([0-9]*\).*/\1/p' | sort -n | head -1)
since=$(( first / 1000000000 - 1 ))
until=$(( since + 100000 ))

filter="not (tcp port 873 or host 192.0.2.1)"
# The options of case $1, into the array `opts`.
options() {
  case $1 in
    plain) opts=() ;;
    range) opts=(--since "$since" --until "$until") ;;
    filter) opts=(--filter "$filter") ;;
    dedup) opts=(--dedup 5ms) ;;
    all) opts=(--since "$since" --until "$until" --filter "$filter" --dedup 5ms) ;;
  esac
}
order=(plain range filter dedup all)
declare -A cpu wall
for r in $(seq "$rounds"); do
  for c in "${order[@]}"; do
    options "$c"
    t=$( { /usr/bin/time -f "%U %S %e" "$bin" -q run -n "$shards" -o "file:$out/$c-{shard}.pcap" \
      "${opts[@]}" "$dir"/pile/* ; } 2>&1 | tail -1)
    read -r u s e <<< "$t"
    cpu[$c]+="$(echo "$u + $s" | bc) "
    wall[$c]+="$e "
  done
done
pc=$(echo "${cpu[plain]}" | median)
pw=$(echo "${wall[plain]}" | median)
echo "pile: $(du -sh "$dir/pile" | cut -f1), $shards shards, $rounds rounds (medians)"
printf '%-8s %8s %8s %8s %8s\n' case cpu_s ratio wall_s ratio
for c in "${order[@]}"; do
  mc=$(echo "${cpu[$c]}" | median)
  mw=$(echo "${wall[$c]}" | median)
  printf '%-8s %8s %8.2f %8s %8.2f\n' "$c" "$mc" "$(echo "$mc / $pc" | bc -l)" "$mw" \
    "$(echo "$mw / $pw" | bc -l)"
done

[ "$many" -gt 0 ] || exit 0
# Many small files: a run over a one-minute range in the middle, with no cache (every file that
# starts before --since is read to its end) and with a primed cache (only each file's head).
"$bin" generate --out "$dir/many" --sensors 2 --files-per-sensor $((many / 2)) --size "$many_size" \
  --duration $((many / 2))s > /dev/null
first=$("$bin" scan "$dir"/many/sensorA.pcap | sed -n 's/.*"first_ts":\([0-9]*\).*/\1/p')
since=$(( first / 1000000000 + many / 4 ))
range="--since $since --until $((since + 60))"
# shellcheck disable=SC2086
"$bin" -q run -n "$shards" -o "file:$out/m-{shard}.pcap" $range --catalog-cache "$dir/cache" "$dir/many"
for r in $(seq "$rounds"); do
  for c in nocache cached; do
    opt=""
    [ $c = cached ] && opt="--catalog-cache $dir/cache"
    # shellcheck disable=SC2086
    t=$( { /usr/bin/time -f "%U %S %e" "$bin" -q run -n "$shards" -o "file:$out/m-{shard}.pcap" \
      $range $opt "$dir/many" ; } 2>&1 | tail -1)
    read -r u s e <<< "$t"
    cpu[$c]+="$(echo "$u + $s" | bc) "
    wall[$c]+="$e "
  done
done
echo "$many files of $many_size, $(wc -l < "$dir/cache") in the cache"
for c in nocache cached; do
  printf '%-8s cpu %ss wall %ss\n' "$c" "$(echo "${cpu[$c]}" | median)" "$(echo "${wall[$c]}" | median)"
done
