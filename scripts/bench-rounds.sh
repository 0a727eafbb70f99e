# Sourced by the benchmark scripts: the binary measured, timed rounds of every case, interleaved
# (so machine noise hits all cases alike), and their medians.

# The absolute path of the shardcap measured: $SHARDCAP_BIN, else a fresh release build.
shardcap_binary() {
  if [ -n "${SHARDCAP_BIN:-}" ]; then
    realpath "$SHARDCAP_BIN"
  else
    cargo build --release --quiet >&2
    realpath "${CARGO_TARGET_DIR:-target}/release/shardcap"
  fi
}

# The median of the numbers on stdin (whitespace-separated), to 12 significant digits (byte
# counts stay whole numbers, not 2.97e+09).
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {printf "%.12g\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# time_rounds ROUNDS DIR CASE...: runs each CASE (a command or shell function) ROUNDS times,
# emptying $out before each run (and syncing when BENCH_SYNC=1), appending "wall user sys" to
# DIR/time-CASE.
time_rounds() {
  local rounds=$1 dir=$2 r c
  shift 2
  local TIMEFORMAT='%R %U %S'
  for ((r = 1; r <= rounds; r++)); do
    for c in "$@"; do
      rm -rf "${out:?}"/*
      [ "${BENCH_SYNC:-0}" = 1 ] && sync
      { time "$c"; } 2>> "$dir/time-$c"
    done
  done
}

# medians DIR CASE...: the median wall time of each case in med[CASE], of its CPU time (user +
# system) in cpu[CASE]; the caller declares both (`declare -A med cpu`).
medians() {
  local dir=$1 c
  shift
  for c in "$@"; do
    med[$c]=$(awk '{print $1}' "$dir/time-$c" | median)
    cpu[$c]=$(awk '{print $2 + $3}' "$dir/time-$c" | median)
  done
}
