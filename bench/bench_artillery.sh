#!/bin/sh
# Artillery's ws engine vs wstool bench, messages per generator CPU-second (issue 15).
#
# Usage: sh bench/bench_artillery.sh ARTILLERY_DIR [SENDS]
#   ARTILLERY_DIR: where `npm install --ignore-scripts artillery@2` was run (its install
#   script fetches a browser from the internet: --ignore-scripts skips it).
#
# Everything runs inside a new network namespace with only loopback up (`unshare -n`):
# Artillery sends usage telemetry even with ARTILLERY_DISABLE_TELEMETRY set, and here
# it can reach nothing but the server beside it. Needs root (or user namespaces).
#
# Artillery: 50 virtual users, each connects and sends SENDS 32-byte messages in a loop
# (its ws engine has no round-trip metric: a bare send loop). Its CPU (user+sys, from
# /usr/bin/time) for SENDS and for 1 send are subtracted, so start-up is not counted.
# The server is wstool serve-echo, whose summary line counts what arrived.
# wstool bench: 50 connections, --window 1 and --window 100, its own generator.cpu_s.
set -eu
ART_DIR=$1
SENDS=${2:-2000}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
export ARTILLERY_DISABLE_TELEMETRY=true
exec unshare -n sh -eu -c '
ip link set lo up
ART_DIR=$1; SENDS=$2; PY=$3; REPO=$4
TMP=$(mktemp -d)
PORT=18765
"$PY" -m wstool serve-echo --port $PORT --ping-interval 0 2>"$TMP/server.log" &
SERVER=$!
sleep 2
scenario() {
  cat >"$TMP/scenario-$1.yml" <<EOF
config:
  target: "ws://127.0.0.1:$PORT/"
  phases:
    - duration: 1
      arrivalCount: 50
scenarios:
  - engine: ws
    flow:
      - loop:
          - send: "0123456789abcdef0123456789abcdef"
        count: $1
EOF
}
art_cpu() {
  scenario "$1"
  /usr/bin/time -f "%U %S" -o "$TMP/time" "$ART_DIR/node_modules/.bin/artillery" run \
    "$TMP/scenario-$1.yml" >"$TMP/art-$1.log" 2>&1
  awk "{print \$1 + \$2}" "$TMP/time"
}
small=$(art_cpu 1)
big=$(art_cpu "$SENDS")
kill -TERM $SERVER; wait $SERVER || true
echo "server: $(grep summary "$TMP/server.log")"
awk -v s="$small" -v b="$big" -v n="$SENDS" "BEGIN {
  printf \"artillery bare send loop: %d msgs in %.2f CPU-s (start-up %.2f s subtracted): %.0f msgs/CPU-s\n\",
    (n - 1) * 50, b - s, s, (n - 1) * 50 / (b - s) }"
"$PY" -m wstool serve-echo --port $PORT --ping-interval 0 2>/dev/null &
SERVER=$!
sleep 2
for w in 1 100; do
  "$PY" -m wstool bench --json --no-compress --ping-interval 0 -c 50 --window $w \
    --duration 4 ws://127.0.0.1:$PORT/ | "$PY" -c "import json, sys
r = json.load(sys.stdin)
print(\"wstool bench --window $w: %d round trips in %.2f CPU-s: %.0f msgs/CPU-s\" % (
    r[\"messages\"][\"received\"], r[\"generator\"][\"cpu_s\"], r[\"generator\"][\"messages_per_cpu_s\"]))"
done
kill -TERM $SERVER; wait $SERVER || true
rm -rf "$TMP"
' sh "$ART_DIR" "$SENDS" "$PY" "$REPO"
