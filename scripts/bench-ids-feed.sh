#!/usr/bin/env bash
# FIFO or spool for the IDS presets (docs/PERFORMANCE.md, "Suricata and Zeek: FIFO or spool"):
# `shardcap run --ids suricata|zeek -n N` with the default FIFOs against the same run with
# `-o dir:SPOOL`, for N = 1 and 2, over one input, every case ROUNDS times, interleaved; medians of
# wall time, of the CPU time (user + system) of the whole run (shardcap and its instances), and of
# the split shardcap logs at its end (`CPU time: shardcap Xs, its consumers Ys`).
#
#   SHARDCAP_BIN=target/ci/shardcap ROUNDS=5 scripts/bench-ids-feed.sh [SIZE | corpus]
#
# SIZE (default 25M) is the size of each of 12 generated files (two sensors, `shardcap generate`);
# `corpus` takes six captures of the public corpus instead ($CORPUS, default /work/shared/corpus).
# Spool and logs go to $OUT_DIR (default /tmp: a disk, as a sensor's spool would be). Zeek is
# $SHARDCAP_TEST_ZEEK (default /opt/zeek/bin/zeek); the pcapdir plugin is $ZEEK_PLUGIN, else built
# here. IDS=suricata or IDS=zeek measures one of them; SEGMENT_SIZE, PIPE_SIZE add those options;
# KEEP_TIMES=DIR keeps every round's figures there.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-rounds.sh

input=${1:-25M}
ROUNDS=${ROUNDS:-5}
zeek=${SHARDCAP_TEST_ZEEK:-/opt/zeek/bin/zeek}
corpus=${CORPUS:-/work/shared/corpus}
idses=${IDS:-suricata zeek}
BIN=$(shardcap_binary)
case " $idses " in *" zeek "*)
  [ -x "$zeek" ] || { echo "Zeek not found at $zeek (set SHARDCAP_TEST_ZEEK)" >&2; exit 1; } ;;
esac
case " $idses " in *" suricata "*)
  command -v suricata >/dev/null || { echo "suricata is not on PATH" >&2; exit 1; } ;;
esac
exec 3>&2 # a failed run's log, past time_rounds' redirection of stderr
export PATH="$(dirname "$zeek"):$PATH"
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-ids-feed.XXXXXX")
out=$(mktemp -d "${OUT_DIR:-/tmp}/bench-ids-feed-out.XXXXXX")
trap 'rm -rf "$work" "$out"' EXIT

if [ "$input" = corpus ]; then
  inputs=("$corpus"/pcapplusplus/realistic-mixed-http-dns-2013.pcap
    "$corpus"/pcapplusplus/realistic-tls-sessions-2021.pcap
    "$corpus"/ndpi/realistic-mixed-apps-1kxun.pcap
    "$corpus"/zeek/echo-connections-82k-packets.pcap
    "$corpus"/zeek/ssh-session.pcap
    "$corpus"/zeek/http-browse-bro-org.pcap)
else
  "$BIN" generate --out "$work/in" --sensors 2 --files-per-sensor 6 --size "$input" --seed 7 >/dev/null
  mapfile -t inputs < <(find "$work/in" -type f | sort)
fi
plugin=${ZEEK_PLUGIN:-}
if [ -z "$plugin" ] && [[ " $idses " == *" zeek "* ]]; then
  plugin=$work/zeek-plugin
  (cd zeek-plugin && sh ./configure --builddir="$plugin" && cmake --build "$plugin" -j2) >"$work/plugin.log" 2>&1 ||
    { cat "$work/plugin.log"; exit 1; }
fi
cat "${inputs[@]}" >/dev/null # page cache
packets=$("$BIN" scan "${inputs[@]}" | python3 -c 'import json,sys; print(sum(json.loads(l)["packets"] for l in sys.stdin if l.strip()))' 2>/dev/null || echo '?')
echo "input: ${#inputs[@]} files, $(du -cm "${inputs[@]}" | tail -1 | cut -f1) MB, $packets packets;" \
  "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(suricata -V 2>/dev/null | head -1); $("$zeek" --version 2>/dev/null)"

extra=()
[ -n "${SEGMENT_SIZE:-}" ] && extra+=(--segment-size "$SEGMENT_SIZE")
[ -n "${PIPE_SIZE:-}" ] && extra+=(--pipe-size "$PIPE_SIZE")

# One run: case NAME = IDS-FEED-N; the split of its CPU time goes to $work/split-NAME.
feed_run() {
  local name=$1 ids=$2 feed=$3 n=$4 opts=()
  [ "$feed" = spool ] && opts+=(-o "dir:$out/spool")
  [ "$ids" = zeek ] && opts+=(--zeek-plugin "$plugin")
  "$BIN" -v run --ids "$ids" -n "$n" --log-dir "$out/logs" "${opts[@]}" "${extra[@]}" "${inputs[@]}" \
    >/dev/null 2>"$work/err" || { cat "$work/err" >&3; exit 1; }
  sed -n 's/.*CPU time: shardcap \([0-9.]*\)s, its consumers \([0-9.]*\)s.*/\1 \2/p' "$work/err" \
    >>"$work/split-$name"
}
cases=()
for ids in $idses; do
  for n in 1 2; do
    for feed in fifo spool; do
      c=$ids-$feed-$n
      eval "$c() { feed_run $c $ids $feed $n; }"
      cases+=("$c")
    done
  done
done

time_rounds "$ROUNDS" "$work" "${cases[@]}"
declare -A med cpu own ids_cpu
medians "$work" "${cases[@]}"
for c in "${cases[@]}"; do
  own[$c]=$(awk '{print $1}' "$work/split-$c" | median)
  ids_cpu[$c]=$(awk '{print $2}' "$work/split-$c" | median)
done
printf '%-16s %8s %9s %9s %13s\n' case wall CPU 'IDS CPU' 'shardcap CPU'
for c in "${cases[@]}"; do
  printf '%-16s %7.2fs %8.2fs %8.2fs %12.2fs\n' "$c" "${med[$c]}" "${cpu[$c]}" "${ids_cpu[$c]}" "${own[$c]}"
done
echo "spool / FIFO (medians):"
printf '%-16s %9s %9s %13s %6s\n' '' 'IDS CPU' 'all CPU' 'shardcap CPU' wall
for ids in $idses; do
  for n in 1 2; do
    f=$ids-fifo-$n s=$ids-spool-$n
    printf '%-16s %9.2f %9.2f %13.2f %6.2f\n' "$ids -n $n" \
      "$(echo "${ids_cpu[$s]} / ${ids_cpu[$f]}" | bc -l)" "$(echo "${cpu[$s]} / ${cpu[$f]}" | bc -l)" \
      "$(echo "${own[$s]} / ${own[$f]}" | bc -l)" "$(echo "${med[$s]} / ${med[$f]}" | bc -l)"
  done
done
if [ -n "${KEEP_TIMES:-}" ]; then cp "$work"/time-* "$work"/split-* "$KEEP_TIMES"/; fi
