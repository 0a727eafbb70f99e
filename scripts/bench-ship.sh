#!/usr/bin/env bash
# Shipper benchmark: records per second and shipper CPU per 100k records for Suricata eve.json and
# Zeek conn.log (TSV), into noida-db and osmem-server (the Elasticsearch stand-ins of the tests),
# beside each server's own limit: the same bulk NDJSON uploaded with curl, in requests of the same
# size (5000 records), gzip-compressed, two at a time (the shipper's defaults).
#
#   scripts/bench-ship.sh [RECORDS]        (default 100000 per log type)
#
# Needs: suricata, curl, /usr/bin/time, and the servers (SHARDCAP_TEST_NOIDA_DB and
# SHARDCAP_TEST_OSMEM_SERVER, or the pip packages noida-db==0.2.3 and osmem-server==0.1.6).
set -euo pipefail
cd "$(dirname "$0")/.."

records=${1:-100000}
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet
bin="$target/release/shardcap"

noida=${SHARDCAP_TEST_NOIDA_DB:-$(python3 -c 'import noida_db, os; print(os.path.join(os.path.dirname(noida_db.__file__), "noida-db"))')}
osmem=${SHARDCAP_TEST_OSMEM_SERVER:-$(python3 -c 'import osmem_server; print(osmem_server.resolve_binary())')}

work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_server KIND: a fresh, empty server; sets $url.
start_server() {
  local port; port=$(free_port)
  url="http://127.0.0.1:$port"
  case "$1" in
    noida) "$noida" start --data-dir "$(mktemp -d -p "$work")" --only elasticsearch \
             --elasticsearch-port "$port" >/dev/null 2>&1 & ;;
    osmem) "$osmem" --addr "127.0.0.1:$port" --no-ja --no-stdin-watch >/dev/null 2>&1 & ;;
  esac
  server_pid=$!
  until curl -sf "$url" >/dev/null; do sleep 0.1; done
}

count() { curl -s -XPOST "$url/_refresh" >/dev/null; curl -s "$url/$1/_count" | python3 -c 'import json, sys; print(json.load(sys.stdin)["count"])'; }

# The inputs: real Suricata output of corpus captures, and the Zeek conn fixture, repeated up to
# $records records (offsets differ, so every line is its own document).
echo "preparing $records records of each log type in $work" >&2
for c in pcapplusplus/realistic-mixed-http-dns-2013.pcap pcapplusplus/realistic-tls-sessions-2021.pcap \
         ndpi/realistic-mixed-apps-1kxun.pcap zeek/echo-connections-82k-packets.pcap; do
  d="$work/suricata/$(basename "$c" .pcap)"
  mkdir -p "$d"
  suricata -r "/work/shared/corpus/$c" -l "$d" -k none --runmode single \
    -S tests/data/ship/test.rules --set outputs.1.eve-log.community-id=true >/dev/null 2>&1
done
mkdir -p "$work/eve" "$work/conn"
cat "$work"/suricata/*/eve.json > "$work/one.json"
awk -v n="$records" '{ l[NR] = $0 } END { for (i = 0; i < n; i++) print l[i % NR + 1] }' \
  "$work/one.json" > "$work/eve/eve.json"
conn=tests/data/ship/zeek-tsv/conn.log
{ grep '^#' "$conn" | grep -v '^#close'
  grep -v '^#' "$conn" | awk -v n="$records" '{ l[NR] = $0 } END { for (i = 0; i < n; i++) print l[i % NR + 1] }'
  grep '^#close' "$conn"; } > "$work/conn/conn.log"

printf '| log | target | records | wall s | records/s | shipper CPU s per 100k |\n'
printf '|---|---|---:|---:|---:|---:|\n'
row() { # log target records wall cpu
  python3 -c 'import sys; log, t, n, w, c = sys.argv[1:]; n, w, c = int(n), float(w), float(c)
print(f"| {log} | {t} | {n} | {w:.2f} | {n / w:,.0f} | {c * 100000 / n:.2f} |" if c >= 0 else f"| {log} | {t} | {n} | {w:.2f} | {n / w:,.0f} | - |")' "$@"
}

for log in eve conn; do
  size=$(stat -c %s "$work/$log/"*)
  echo "$log: $(du -h "$work/$log" | cut -f1) of logs, $size bytes" >&2
  # The shipper alone: bulk NDJSON to a file, no server.
  /usr/bin/time -f '%e %U %S' -o "$work/t" "$bin" -q ship --out "$work/$log.ndjson" "$work/$log"
  read -r wall user sys < "$work/t"
  row "$log" "shipper alone (--out file)" "$records" "$wall" "$(python3 -c "print($user + $sys)")"
  # Bodies of the size the shipper sends by default (5000 records, or 5 MiB).
  rm -rf "$work/chunks"; mkdir "$work/chunks"
  split -l 10000 "$work/$log.ndjson" "$work/chunks/c"
  gzip -1 "$work"/chunks/c*
  for kind in noida osmem; do
    start_server "$kind"
    /usr/bin/time -f '%e %U %S' -o "$work/t" "$bin" -q ship --es "$url" \
      --state "$(mktemp -d -p "$work")" "$work/$log"
    read -r wall user sys < "$work/t"
    got=$(count '*')
    [ "$got" = "$records" ] || echo "WARNING: $kind holds $got documents, not $records" >&2
    row "$log" "shardcap ship -> $kind" "$records" "$wall" "$(python3 -c "print($user + $sys)")"
    stop_server

    start_server "$kind"
    start=$(date +%s.%N)
    ls "$work"/chunks/c* | xargs -P 2 -I{} curl -s -o /dev/null -XPOST "$url/_bulk" \
      -H 'Content-Type: application/x-ndjson' -H 'Content-Encoding: gzip' --data-binary @{}
    wall=$(python3 -c "import time; print(time.time() - $start)")
    got=$(count '*')
    [ "$got" = "$records" ] || echo "WARNING: $kind holds $got documents after curl, not $records" >&2
    row "$log" "curl bulk upload -> $kind (server limit)" "$records" "$wall" -1
    stop_server
  done
done
