#!/usr/bin/env bash
# Zeek behind shardcap (docs/PERFORMANCE.md, "Zeek"): one Zeek over the merged input against
# `shardcap run --ids zeek -n N`, with wall time, the packet rate per Zeek instance and shardcap's
# share of the CPU time.
#
#   scripts/bench-zeek.sh [SIZE]     # SIZE per generated file (default 16M; 12 files)
#
# Zeek is $SHARDCAP_TEST_ZEEK (default /opt/zeek/bin/zeek); shardcap is target/release/shardcap
# (cargo build --release first) or $SHARDCAP.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-16M}
zeek=${SHARDCAP_TEST_ZEEK:-/opt/zeek/bin/zeek}
sc=$(realpath "${SHARDCAP:-target/release/shardcap}")
[ -x "$zeek" ] || { echo "Zeek not found at $zeek (set SHARDCAP_TEST_ZEEK)" >&2; exit 1; }
[ -x "$sc" ] || { echo "$sc not found: cargo build --release" >&2; exit 1; }
export PATH="$(dirname "$zeek"):$PATH"
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-zeek.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$sc" generate --out "$work/in" --sensors 2 --files-per-sensor 6 --size "$size" --seed 5 >/dev/null
mapfile -t inputs < <(find "$work/in" -type f | sort)
"$sc" run -q -n 1 -o "file:$work/merged.pcap" --stats-file "$work/merge.json" "${inputs[@]}"
packets=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["packets"])' "$work/merge.json")
bytes=$(stat -c %s "$work/merged.pcap")
cat "${inputs[@]}" "$work/merged.pcap" >/dev/null # page cache
echo "input: ${#inputs[@]} files, $packets packets, $((bytes / 1000000)) MB; $(nproc) cores; $("$zeek" --version)"

# Prints "wall user+sys" of a command (GNU time), its output going to $2.
timed() {
    local out=$1; shift
    /usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >"$out" 2>&1
    awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$work/time"
}

mkdir "$work/one"
read -r wall cpu < <(cd "$work/one" && timed "$work/one.out" "$zeek" -C -r "$work/merged.pcap" \
    LogAscii::use_json=T policy/protocols/conn/community-id-logging)
printf '%-28s wall %6.2fs  CPU %6.2fs  %8.0f packets per Zeek CPU second\n' "one Zeek, merged file" \
    "$wall" "$cpu" "$(echo "$packets / $cpu" | bc -l)"

for n in 1 2 4 8; do
    read -r wall cpu < <(timed "$work/run-$n.out" "$sc" run -v --ids zeek --hash 2-tuple -n "$n" \
        --log-dir "$work/logs-$n" "${inputs[@]}")
    # "CPU time: shardcap Xs, its consumers Ys"
    read -r own zeeks < <(sed -n 's/.*CPU time: shardcap \([0-9.]*\)s, its consumers \([0-9.]*\)s.*/\1 \2/p' \
        "$work/run-$n.out")
    printf '%-28s wall %6.2fs  CPU %6.2fs  %8.0f packets per Zeek CPU second  shardcap %.2fs (%.1f%% of the CPU)\n' \
        "shardcap --ids zeek -n $n" "$wall" "$cpu" "$(echo "$packets / $zeeks" | bc -l)" "$own" \
        "$(echo "100 * $own / ($own + $zeeks)" | bc -l)"
    rm -rf "$work/logs-$n"
done
