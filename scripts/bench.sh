#!/usr/bin/env bash
# Dispatcher throughput against `cat` of the same files, measured in the same run, plus peak memory.
#
# Generates SIZE of realistic rotated captures (2 sensors) with `shardcap generate`, warms the page
# cache, then runs every case ROUNDS times, interleaved (so machine noise hits all cases alike), and
# prints the median wall time of each, its ratio to its baseline, and shardcap's peak RSS.
# The fair baselines write what shardcap writes (DESIGN.md, "Performance notes"): a file on the same
# filesystem, fsync'd as shardcap's file outputs are; or a FIFO drained by `cat > /dev/null`.
#
#   scripts/bench.sh [SIZE]          SIZE like 3G (default), 500M
#   env: BENCH_DIR (default /tmp/shardcap-bench): the generated inputs;
#        OUT_DIR (default /dev/shm/shardcap-bench-out, tmpfs, so that file outputs measure shardcap
#        and not the disk; set it to a disk directory to include the disk, and to measure the
#        default direct writes of file outputs, which tmpfs does not take): every output;
#        ROUNDS (default 3), SHARDS (default 8), KEEP=1 keeps the generated inputs for a rerun,
#        SHARDCAP_BIN=PATH measures that binary instead of building target/release/shardcap,
#        MANY_FILES (default 2000): the many-inputs case, that many 256 KiB files from two sensors,
#        where the open file descriptors are sampled from /proc during the run (0 skips it);
#        BEFORE=PATH: another shardcap binary (an earlier version) measured in the same rounds
#        (its cases end in _before), its shard files checked byte-identical to SHARDCAP_BIN's,
#        and, with valgrind installed, the user-space instructions a packet of both (callgrind,
#        `-n 8 -o file:` over the first two input files).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-rounds.sh
size=${1:-3G}
rounds=${ROUNDS:-3}
shards=${SHARDS:-8}
dir=${BENCH_DIR:-/tmp/shardcap-bench}

if [ ! -x /usr/bin/time ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    apt-get install -y -qq time > /dev/null
  else
    echo "bench: needs GNU time for peak RSS (apt-get install time)" >&2
    exit 2
  fi
fi
bin=$(shardcap_binary)

in="$dir/in"
out=${OUT_DIR:-/dev/shm/shardcap-bench-out}
cleanup() {
  jobs -p | xargs -r kill 2>/dev/null || true
  rm -rf "$out" "$dir"/rss-* "$dir"/time-* "$dir"/stat-* "$dir"/cs-* "$dir"/own-* "$dir/many"
  [ "${KEEP:-0}" = 1 ] || rm -rf "$dir/in"
  rmdir "$dir" 2> /dev/null || true
}
trap cleanup EXIT
mkdir -p "$in" "$out"
rm -f "$dir"/rss-* "$dir"/time-* "$dir"/stat-* "$dir"/cs-* "$dir"/own-*

# Rotated files of 128 MiB (smaller for small sizes), two sensors.
bytes=$(numfmt --from=iec "$size")
file_size=$((128 << 20))
per_sensor=$(( (bytes + 2 * file_size - 1) / (2 * file_size) ))
if [ "$per_sensor" -lt 4 ]; then
  per_sensor=4
  file_size=$(( bytes / 8 ))
fi
if [ "$(find "$in" -type f | wc -l)" -ne $((2 * per_sensor)) ]; then
  rm -rf "${in:?}"/*
  "$bin" generate --out "$in" --sensors 2 --files-per-sensor "$per_sensor" --size "$file_size" \
    --duration 300s --seed 1
fi
mapfile -t files < <(find "$in" -type f | sort)
total=$(cat "${files[@]}" | wc -c)
packets=$("$bin" scan "$in" | sed -E 's/.*"packets":([0-9]+).*/\1/' | awk '{n += $1} END {print n}')

# Warm the page cache.
cat "${files[@]}" > /dev/null
cat "${files[@]}" > /dev/null

# One discarding reader per FIFO, started before the writer opens it.
fifo_readers() {
  local k
  for ((k = 0; k < $1; k++)); do
    mkfifo "$out/fifo-$k"
    cat "$out/fifo-$k" > /dev/null &
  done
}
# shardcap NAME ARGS...: shardcap ($measured, default $bin) under GNU time; its peak RSS (KiB)
# appended to $dir/rss-NAME, its voluntary and involuntary context switches to $dir/cs-NAME, its
# own CPU time (user + system, without the FIFOs' readers) to $dir/own-NAME, and the two apart to
# $dir/usr-NAME and $dir/sys-NAME.
shardcap() {
  local name=$1; shift
  /usr/bin/time -a -f '%M %w %c %U %S' -o "$dir/stat-$name" "${measured:-$bin}" "$@"
  tail -1 "$dir/stat-$name" | awk '{print $1}' >> "$dir/rss-$name"
  tail -1 "$dir/stat-$name" | awk '{print $2 + $3}' >> "$dir/cs-$name"
  own "$name" 4
}
# own NAME FIELD: the user (field FIELD) and system (the next) time of the last line of
# $dir/stat-NAME, appended to $dir/own-NAME, $dir/usr-NAME and $dir/sys-NAME.
own() {
  tail -1 "$dir/stat-$1" | awk -v f="$2" '{print $f + $(f + 1)}' >> "$dir/own-$1"
  tail -1 "$dir/stat-$1" | awk -v f="$2" '{print $f}' >> "$dir/usr-$1"
  tail -1 "$dir/stat-$1" | awk -v f="$2" '{print $(f + 1)}' >> "$dir/sys-$1"
}
# writer NAME FILE: the baseline's writing `cat` of every input into FILE, its own CPU time
# appended as `own` does.
writer() {
  /usr/bin/time -a -f '%U %S' -o "$dir/stat-$1" cat "${files[@]}" > "$2"
  own "$1" 1
}

cat_null()  { cat "${files[@]}" > /dev/null; }
cat_file()  { writer cat_file "$out/cat.pcap"; sync "$out/cat.pcap"; }
cat_fifo()  { fifo_readers 1; writer cat_fifo "$out/fifo-0"; wait; }
run_files_named() { shardcap "$1" run -q -n "$shards" -o "file:$out/shard-{shard}.pcap" "${files[@]}"; }
run_fifos_named() { fifo_readers "$shards"; shardcap "$1" run -q -n "$shards" -o "fifo:$out/fifo-{shard}" "${files[@]}"; wait; }
run_one_named()   { shardcap "$1" run -q -n 1 -o "file:$out/shard-{shard}.pcap" "${files[@]}"; }
run_files() { run_files_named run_files; }
run_fifos() { run_fifos_named run_fifos; }
run_one()   { run_one_named run_one; }
# The file outputs through the page cache (direct writes are the default where the output's
# filesystem takes them: not on tmpfs, the default OUT_DIR).
run_files_buffered() { shardcap run_files_buffered run -q -n "$shards" --file-io buffered -o "file:$out/shard-{shard}.pcap" "${files[@]}"; }
run_one_buffered()   { shardcap run_one_buffered run -q -n 1 --file-io buffered -o "file:$out/shard-{shard}.pcap" "${files[@]}"; }
run_given() { shardcap run_given run -q -n "$shards" --order given -o "file:$out/shard-{shard}.pcap" "${files[@]}"; }

cases=(cat_null cat_file run_files run_one run_files_buffered run_one_buffered run_given cat_fifo run_fifos)
if [ -n "${BEFORE:-}" ]; then
  before=$(realpath "$BEFORE")
  run_files_before() { measured=$before run_files_named run_files_before; }
  run_one_before()   { measured=$before run_one_named run_one_before; }
  run_fifos_before() { measured=$before run_fifos_named run_fifos_before; }
  cases+=(run_files_before run_one_before run_fifos_before)
fi
# Each case's wall, user and system time (bash's time: the case and every process it waited for).
BENCH_SYNC=1 time_rounds "$rounds" "$dir" "${cases[@]}"
declare -A med cpu
medians "$dir" "${cases[@]}"

printf '\nshardcap dispatcher benchmark: %d MB in %d files, %d packets, %d shards, median of %d rounds\n' \
  $((total / 1000000)) "${#files[@]}" "$packets" "$shards" "$rounds"
printf 'machine: %s cores, %s, %s; %s\n\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
  "$(uname -r)" "$(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-40s %7s %11s %-18s %7s %-18s %s\n' case wall throughput "  wall vs baseline" CPU "  CPU vs baseline" "peak RSS"
row() { # CASE LABEL [BASELINE]
  local mem="" ratio="" cratio=""
  [ -f "$dir/rss-$1" ] && mem="$(( $(sort -n "$dir/rss-$1" | tail -1) / 1024 )) MiB"
  if [ -n "${3:-}" ]; then
    ratio=$(awk -v a="${med[$1]}" -v b="${med[$3]}" -v n="$3" 'BEGIN {printf "%.2fx %s", a / b, n}')
    cratio=$(awk -v a="${cpu[$1]}" -v b="${cpu[$3]}" -v n="$3" 'BEGIN {printf "%.2fx %s", a / b, n}')
  fi
  awk -v t="${med[$1]}" -v c="${cpu[$1]}" -v bytes="$total" -v label="$2" -v ratio="$ratio" \
    -v cratio="$cratio" -v mem="$mem" 'BEGIN {printf "%-40s %5.2f s %6.0f MB/s  %-16s %5.2f s  %-16s %s\n",
      label, t, bytes / 1e6 / t, ratio, c, cratio, mem}'
}
row cat_null  "cat FILES > /dev/null"
row cat_file  "cat FILES > file; sync file"             cat_null
row run_files "shardcap run -n $shards -o file:"        cat_file
row run_one   "shardcap run -n 1 -o file:"              cat_file
row run_files_buffered "  the same, --file-io buffered"   cat_file
row run_one_buffered   "  -n 1, --file-io buffered"       cat_file
row run_given "shardcap run -n $shards --order given"   cat_file
row cat_fifo  "cat FILES > fifo | cat > /dev/null"      cat_null
row run_fifos "shardcap run -n $shards -o fifo: | cats" cat_fifo
if [ -n "${BEFORE:-}" ]; then
  row run_files_before "BEFORE run -n $shards -o file:"    cat_file
  row run_one_before   "BEFORE run -n 1 -o file:"          cat_file
  row run_fifos_before "BEFORE run -n $shards -o fifo: | cats" cat_fifo
fi
# The writer's own CPU: shardcap's process against the baseline's writing `cat` (the FIFOs'
# readers, which `time` above includes, left out).
printf '\nown CPU (user + system of the writing process, median; GNU time, 10 ms steps): cat to file %.2f s (user %.2f, system %.2f), cat to FIFO %.2f s\n' \
  "$(median < "$dir/own-cat_file")" "$(median < "$dir/usr-cat_file")" \
  "$(median < "$dir/sys-cat_file")" "$(median < "$dir/own-cat_fifo")"
own_row() { # CASE LABEL BASELINE
  awk -v a="$(median < "$dir/own-$1")" -v b="$(median < "$dir/own-$3")" -v label="$2" -v n="$3" \
    -v u="$(median < "$dir/usr-$1")" -v s="$(median < "$dir/sys-$1")" \
    'BEGIN {printf "%-40s %5.2f s  %.2fx %s  (user %.2f s, system %.2f s)\n", label, a, a / b, n, u, s}'
}
own_row run_files "shardcap run -n $shards -o file:" cat_file
own_row run_one   "shardcap run -n 1 -o file:"       cat_file
own_row run_files_buffered "  the same, --file-io buffered" cat_file
own_row run_one_buffered   "  -n 1, --file-io buffered"     cat_file
own_row run_fifos "shardcap run -n $shards -o fifo:" cat_fifo
if [ -n "${BEFORE:-}" ]; then
  own_row run_files_before "BEFORE run -n $shards -o file:" cat_file
  own_row run_one_before   "BEFORE run -n 1 -o file:"       cat_file
  own_row run_fifos_before "BEFORE run -n $shards -o fifo:" cat_fifo
fi
printf '\ncontext switches of shardcap (voluntary + involuntary, median):'
for c in run_files run_one run_files_buffered run_one_buffered run_given run_fifos ${BEFORE:+run_files_before run_one_before run_fifos_before}; do
  printf ' %s %s;' "$c" "$(median < "$dir/cs-$c")"
done
printf '\n'

if [ -n "${BEFORE:-}" ]; then
  # The same shard files from both binaries.
  for which in after before; do
    m=$bin; [ "$which" = before ] && m=$before
    rm -rf "${out:?}"/*
    "$m" run -q -n "$shards" -o "file:$out/shard-{shard}.pcap" "${files[@]}"
    (cd "$out" && sha256sum shard-*.pcap) > "$dir/sums-$which"
  done
  if cmp -s "$dir/sums-after" "$dir/sums-before"; then
    echo "shard files of BEFORE and SHARDCAP_BIN: byte-identical (sha256 of all $shards)"
  else
    echo "shard files of BEFORE and SHARDCAP_BIN DIFFER:" >&2
    diff "$dir/sums-before" "$dir/sums-after" >&2 || true
  fi
  rm -f "$dir"/sums-*
  if command -v valgrind > /dev/null; then
    for m in "$before" "$bin"; do
      rm -rf "${out:?}"/*
      n=$("$m" scan "${files[@]:0:2}" | sed -E 's/.*"packets":([0-9]+).*/\1/' | awk '{n += $1} END {print n}')
      ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$m" run -q -n "$shards" \
             -o "file:$out/shard-{shard}.pcap" "${files[@]:0:2}" 2>&1 | sed -nE 's/.*Collected : ([0-9]+).*/\1/p')
      printf 'callgrind %s: %d instructions, %d packets, %.0f a packet\n' "$m" "$ir" "$n" "$(echo "$ir / $n" | bc -l)"
    done
  fi
fi

# Many small inputs: open files and memory stay bounded (files open when packet time reaches
# them and close at their end; two sensors overlap, so about two inputs are open at a time).
many=${MANY_FILES:-2000}
[ "$many" -gt 0 ] || exit 0
in="$dir/many"
rm -rf "${in:?}" "${out:?}"/*
mkdir -p "$in"
"$bin" generate --out "$in" --sensors 2 --files-per-sensor $((many / 2)) --size 256K --duration 3600s --seed 2 > /dev/null
mapfile -t files < <(find "$in" -type f | sort)
total=$(cat "${files[@]}" | wc -c)
cat "${files[@]}" > /dev/null
t0=$(date +%s%N); cat "${files[@]}" > "$out/cat.pcap"; sync "$out/cat.pcap"; t1=$(date +%s%N)
rm -f "$out/cat.pcap"
t2=$(date +%s%N)
/usr/bin/time -f %M -o "$dir/rss-many" "$bin" run -q -n "$shards" -o "file:$out/shard-{shard}.pcap" "$in" &
timer=$!
max_fds=0
while kill -0 "$timer" 2> /dev/null; do
  pid=$(pgrep -P "$timer") || pid=
  if [ -n "$pid" ]; then
    n=$(find "/proc/$pid/fd" -mindepth 1 2> /dev/null | wc -l)
    [ "$n" -gt "$max_fds" ] && max_fds=$n
  fi
  sleep 0.01
done
wait "$timer"
t3=$(date +%s%N)
printf '\nmany inputs: %d files of 256 KiB from 2 sensors (%d MB), shardcap run -n %d -o file: (--order time)\n' \
  "${#files[@]}" $((total / 1000000)) "$shards"
awk -v c=$((t1 - t0)) -v s=$((t3 - t2)) -v fds="$max_fds" -v rss="$(cat "$dir/rss-many")" \
  'BEGIN {printf "cat > file %.2f s, shardcap %.2f s (%.2fx); most open descriptors seen %d (stdio, %d outputs, inputs); peak RSS %d MiB\n",
          c / 1e9, s / 1e9, s / c, fds, '"$shards"', rss / 1024}'
