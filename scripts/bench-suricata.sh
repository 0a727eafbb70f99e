#!/usr/bin/env bash
# Wall time of one Suricata over a merged capture against `shardcap run --ids suricata -n N` over the
# same packets as rotated files, and shardcap's own CPU share.
#
#   scripts/bench-suricata.sh [COPIES] [RUNS]
#
# The input: COPIES (default 12) back-to-back copies each of two corpus captures,
# pcapplusplus/realistic-mixed-http-dns-2013 (HTTP/DNS/TLS, application-layer heavy) and
# zeek/echo-connections-82k-packets (500 TCP connections, small packets), shifted in time so that
# they follow one another; one file per copy (a rotated capture) and the same packets as one merged
# file for the reference. Each configuration runs RUNS times (default 3); the median is reported.
# Needs: a release build (made here), suricata, python3, /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-rounds.sh

COPIES=${1:-12}
RUNS=${2:-3}
CORPUS=${CORPUS:-../shared/corpus}
[ -d "$CORPUS" ] || CORPUS=/work/shared/corpus
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-suricata.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-target}/release/shardcap

python3 - "$WORK" "$COPIES" "$CORPUS/pcapplusplus/realistic-mixed-http-dns-2013.pcap" \
  "$CORPUS/zeek/echo-connections-82k-packets.pcap" <<'EOF'
import struct, sys
work, copies, srcs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def records(path):
    d = open(path, 'rb').read()
    assert struct.unpack('<I', d[:4])[0] == 0xa1b2c3d4, path
    out, o = [], 24
    while o + 16 <= len(d):
        sec, usec, cl, ol = struct.unpack('<IIII', d[o:o + 16])
        out.append((sec * 1_000_000 + usec, d[o + 8:o + 16 + cl]))
        o += 16 + cl
    return d[:24], out
header, _ = records(srcs[0])
traces = [records(s)[1] for s in srcs]
merged = open(f'{work}/merged.pcap', 'wb')
merged.write(header)
t = 1_600_000_000_000_000
for i in range(copies):
    for j, recs in enumerate(traces):
        base = recs[0][0]
        f = open(f'{work}/rotated-{i:03d}-{j}.pcap', 'wb')
        f.write(header)
        for ts, rest in recs:
            ts = t + max(ts - base, 0)
            rec = struct.pack('<II', ts // 1_000_000, ts % 1_000_000) + rest
            f.write(rec)
            merged.write(rec)
        t = ts + 1_000_000
EOF
cat "$WORK"/*.pcap > /dev/null   # into the page cache
SIZE=$(du -m "$WORK/merged.pcap" | cut -f1)
PKTS=$("$BIN" scan "$WORK/merged.pcap" | python3 -c 'import json,sys; print(json.load(sys.stdin)["packets"])')
echo "input: $SIZE MB, $PKTS packets; merged file and $(ls "$WORK"/rotated-*.pcap | wc -l) rotated files"


# One Suricata over the merged file (default runmode autofp over all cores).
ref=()
for r in $(seq "$RUNS"); do
  rm -rf "$WORK/ref"; mkdir "$WORK/ref"
  /usr/bin/time -f '%e %U %S' -o "$WORK/t" suricata -c suricata-conf/suricata.yaml -k none \
    -r "$WORK/merged.pcap" -l "$WORK/ref" >/dev/null 2>&1
  ref+=("$(awk '{printf "%s %.2f", $1, $2 + $3}' "$WORK/t")")
done
read -r REF REFCPU <<<"$(printf '%s\n' "${ref[@]}" | sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')"
echo "one suricata (autofp, $(nproc) cores): ${REF}s wall, ${REFCPU}s CPU"

for N in 1 2; do
  walls=(); shares=()
  for r in $(seq "$RUNS"); do
    rm -rf "$WORK/logs"
    /usr/bin/time -f '%e' -o "$WORK/t" "$BIN" -v run --ids suricata -n "$N" --log-dir "$WORK/logs" \
      "$WORK"/rotated-*.pcap 2>"$WORK/err" >/dev/null || { cat "$WORK/err"; exit 1; }
    wall=$(cat "$WORK/t")
    cpu=$(sed -n 's/.*CPU time: shardcap \([0-9.]*\)s, its consumers \([0-9.]*\)s.*/\1 \2/p' "$WORK/err")
    walls+=("$wall")
    shares+=("$(echo "$cpu $wall" | awk '{printf "%.3f %.1f %.1f %.2f", $1, 100*$1/($1+$2), 100*$1/$3, $2}')")
  done
  W=$(printf '%s\n' "${walls[@]}" | median)
  S=$(printf '%s\n' "${shares[@]}" | sort -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')
  read -r own pct_cpu pct_wall ids_cpu <<<"$S"
  echo "shardcap -n $N: ${W}s wall, ratio to one suricata $(awk -v a="$W" -v b="$REF" 'BEGIN{printf "%.2f", a/b}')" \
       "(speed-up $(awk -v a="$W" -v b="$REF" 'BEGIN{printf "%.2f", b/a}')x);" \
       "CPU: suricata ${ids_cpu}s, shardcap ${own}s = ${pct_cpu}% of all CPU used," \
       "${pct_wall}% of one core over the run"
done
