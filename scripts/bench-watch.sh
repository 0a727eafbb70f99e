#!/usr/bin/env bash
# Continuous mode while a large gzip capture is taken: bytes read per byte of input, and the
# longest stall of the shards, for the shardcap measured and (with BASELINE_BIN) a baseline binary,
# interleaved in the same run.
#
# One sensor rotates small captures into a watched spool, one every FEED_MS; two seconds in, a
# gzip capture of BIG (uncompressed) bytes from another sensor, its packets later than the small
# files', is moved in. Four shards go to FIFOs read by `cat` (as to IDS instances; a file output
# would add an fsync whenever the spool runs dry). What shardcap has written (wchar of
# /proc/PID/io) is sampled every 50 ms:
# the longest time it did not grow by 64 KiB (more than a stats file) while small files kept
# arriving (from the drop of the large capture to the last small file) is the shards' longest
# stall. Bytes read come from /proc/PID/io (rchar: every byte
# the process read, from the page cache or not) once every file is done. With DUPLICATE=1 a second
# name of the gzip capture (a hard link: the same bytes) is moved in just after it, so its
# duplicate check reads and hashes both to their end.
#
#   scripts/bench-watch.sh
#   env: BENCH_DIR (default /tmp/shardcap-bench-watch), ROUNDS (default 2), SMALL (files,
#        default 150), SMALL_SIZE (default 4M), FEED_MS (default 100), BIG (default 1G),
#        DUPLICATE (default 0),
#        SHARDCAP_BIN=PATH (default: build target/release), BASELINE_BIN=PATH (optional).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-rounds.sh
rounds=${ROUNDS:-2}
small=${SMALL:-150}
small_size=${SMALL_SIZE:-4M}
feed_ms=${FEED_MS:-100}
big=${BIG:-1G}
duplicate=${DUPLICATE:-0}
dir=${BENCH_DIR:-/tmp/shardcap-bench-watch}
bin=$(shardcap_binary)
declare -A bins=([after]=$bin)
cases=(after)
if [ -n "${BASELINE_BIN:-}" ]; then
  bins[before]=$(realpath "$BASELINE_BIN")
  cases=(before after)
fi
cleanup() {
  jobs -p | xargs -r kill 2> /dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
rm -rf "$dir"
mkdir -p "$dir/small" "$dir/big" "$dir/stage" "$dir/spool" "$dir/out"

# Inputs: the small files of sensor A, and one large capture whose packets start an hour later.
"$bin" generate --out "$dir/small" --sensors 1 --files-per-sensor "$small" --size "$small_size" \
  --duration $((small * feed_ms / 1000 + 1))s -q
"$bin" generate --out "$dir/big" --sensors 1 --files-per-sensor 1 --size "$big" --duration 60s -q
editcap -t 3600 "$dir/big/sensorA.pcap" "$dir/late.pcap"
rm -rf "$dir/big"
gzip "$dir/late.pcap"
big_files=1
if [ "$duplicate" = 1 ]; then
  ln "$dir/late.pcap.gz" "$dir/late-copy.pcap.gz"
  big_files=2
fi
mapfile -t files < <(ls -v "$dir/small")
small_bytes=$(du -cb "$dir"/small/* | tail -1 | cut -f1)
big_bytes=$(stat -c %s "$dir/late.pcap.gz")
echo "inputs: $small small files, $small_bytes bytes; late.pcap.gz: $big_bytes bytes ($big uncompressed)"

# A stats counter of the JSON stats file (0 before it exists).
stat_of() {
  local v
  v=$(grep -o "\"$1\": *[0-9]*" "$dir/stats.json" 2> /dev/null | grep -o '[0-9]*$' || true)
  echo "${v:-0}"
}

# Moves a hard link of FILE (in DIR) into the spool, renamed in as a writer would.
drop() {
  ln "$1/$2" "$dir/stage/$2"
  mv "$dir/stage/$2" "$dir/spool/$2"
}

# One run of CASE: prints "stall_s rchar longest_intake_ms feed_gap_s" (the intake look 0 where
# not kept).
run_case() {
  local b=${bins[$1]} pid sampler t_drop t_end k
  rm -rf "$dir"/spool/* "$dir"/out/* "$dir/logs" "$dir/stats.json" "$dir/samples"
  "$b" run --watch "$dir/spool" --settle 0 --horizon 2s -n 4 -q \
    -o "fifo:$dir/out/shard-{shard}" --exec 'cat {input} > /dev/null' --log-dir "$dir/logs" \
    --stats-file "$dir/stats.json" --stats-interval 50ms &
  pid=$!
  while [ ! -e "$dir/stats.json" ]; do sleep 0.05; done
  # The sampler forks nothing (a starved fork would read as a stall): bash builtins only, and a
  # read with a timeout on a FIFO nobody writes as its 50 ms sleep.
  rm -f "$dir/tick"
  mkfifo "$dir/tick"
  (
    exec {tick}<> "$dir/tick"
    while kill -0 "$pid" 2> /dev/null; do
      while read -r key value; do [ "$key" = wchar: ] && w=$value; done < "/proc/$pid/io"
      echo "$EPOCHREALTIME $w"
      read -r -t 0.05 -u "$tick" || true
    done > "$dir/samples"
  ) &
  sampler=$!
  local nap fed=() feed_gap
  nap=$(echo "scale=3; $feed_ms / 1000" | bc)
  for ((k = 0; k < ${#files[@]}; k++)); do
    if ((k == 2000 / feed_ms)); then
      t_drop=$EPOCHREALTIME
      drop "$dir" late.pcap.gz
      [ "$duplicate" = 1 ] && drop "$dir" late-copy.pcap.gz
    fi
    drop "$dir/small" "${files[k]}"
    fed+=("$EPOCHREALTIME")
    sleep "$nap"
  done
  t_end=$EPOCHREALTIME
  # The feeder's own longest pause after the drop (a loaded machine stretches it): the shards
  # cannot be busier than their input.
  feed_gap=$(printf '%s\n' "${fed[@]}" | awk -v a="$t_drop" \
    '$1 > a && p > a && $1 - p > g { g = $1 - p } { p = $1 } END { printf "%.2f", g }')
  while [ "$(stat_of files_done)" -lt $((${#files[@]} + big_files)) ]; do sleep 0.1; done
  local rchar
  rchar=$(awk '/^rchar/ {print $2}' "/proc/$pid/io")
  kill -TERM "$pid"
  wait "$pid" || true
  wait "$sampler" || true
  local look
  look=$(stat_of longest_intake_ms)
  awk -v a="$t_drop" -v z="$t_end" -v r="$rchar" -v l="$look" -v f="$feed_gap" '
    NR == 1 { written = $2; last = $1 }
    $2 - written >= 65536 { note($1); written = $2; last = $1 }
    function note(t,   from, to) {
      from = (last > a) ? last : a; to = (t < z) ? t : z
      if (to - from > worst) worst = to - from
    }
    END { note(z); printf "%.2f %s %s %s\n", worst, r, l, f }' "$dir/samples"
}

declare -A stalls reads looks
for ((r = 1; r <= rounds; r++)); do
  for c in "${cases[@]}"; do
    read -r s x l f < <(run_case "$c")
    echo "round $r $c: longest stall ${s}s, read $x bytes, longest intake look ${l} ms," \
      "longest feed gap ${f}s"
    stalls[$c]+="$s "
    reads[$c]+="$x "
    looks[$c]+="$l "
  done
done
input=$((small_bytes + big_files * big_bytes))
for c in "${cases[@]}"; do
  s=$(echo "${stalls[$c]}" | median)
  x=$(echo "${reads[$c]}" | median)
  l=$(echo "${looks[$c]}" | median)
  printf '%-7s longest stall %5.2f s  read %6.2f bytes per input byte (%s of %s)  longest intake look %s ms  [%s]\n' \
    "$c" "$s" "$(echo "scale=4; $x / $input" | bc)" "$x" "$input" "$l" "${bins[$c]}"
done
