#!/bin/sh
# Artillery's ws engine with `match` (round trips) vs wstool bench, round trips per
# generator CPU-second (issue 15).
#
# Usage: sh bench/bench_artillery_match.sh ARTILLERY_DIR [SENDS]
#   ARTILLERY_DIR: where `npm install --ignore-scripts artillery@2` was run (its install
#   script fetches a browser from the internet: --ignore-scripts skips it).
#
# Runs inside a new network namespace with only loopback up (`unshare -n`): Artillery
# sends usage telemetry even with ARTILLERY_DISABLE_TELEMETRY set. Skips with a message
# when unshare, ip or Artillery is missing (unshare needs root or user namespaces).
#
# Artillery: 50 virtual users, each connects and does SENDS round trips: `send` with
# `match` (it waits for the echo and checks its JSON field `id`), 32-byte messages.
# Its CPU (user+sys of `artillery run`, /usr/bin/time) for SENDS minus that for 1 send
# (start-up and the 50 connects), over 50 x (SENDS - 1) round trips.
# wstool bench: 50 connections, --window 1, the same message, its own generator.cpu_s.
set -eu
ART_DIR=${1:-}
SENDS=${2:-1000}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
for tool in unshare ip /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || { echo "skipped: $tool not found"; exit 0; }
done
if [ -z "$ART_DIR" ] || [ ! -x "$ART_DIR/node_modules/.bin/artillery" ]; then
  echo "skipped: no Artillery (npm install --ignore-scripts artillery@2 in a directory, pass it)"
  exit 0
fi
unshare -n true 2>/dev/null || { echo "skipped: unshare -n not permitted here"; exit 0; }
export ARTILLERY_DISABLE_TELEMETRY=true
exec unshare -n sh -eu -c '
ip link set lo up
ART_DIR=$1; SENDS=$2; PY=$3
TMP=$(mktemp -d)
PORT=18766
MSG="{\"id\":1,\"p\":\"0123456789abcdefg\"}"
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
          - send:
              payload: '"'"'$MSG'"'"'
              match:
                json: "\$.id"
                value: 1
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
grep -E "websocket.messages_sent|vusers.failed|vusers.completed|errors" "$TMP/art-$SENDS.log" | sort | uniq | head -5
kill -TERM $SERVER; wait $SERVER || true
echo "server: $(grep summary "$TMP/server.log")"
awk -v s="$small" -v b="$big" -v n="$SENDS" "BEGIN {
  printf \"artillery send+match: %d round trips in %.2f CPU-s (start-up %.2f s subtracted): %.0f round trips/CPU-s\n\",
    (n - 1) * 50, b - s, s, (n - 1) * 50 / (b - s) }"
"$PY" -m wstool serve-echo --port $PORT --ping-interval 0 2>/dev/null &
SERVER=$!
sleep 2
"$PY" -m wstool bench --json --no-compress --ping-interval 0 -c 50 --window 1 \
  --message "$MSG" --duration 4 ws://127.0.0.1:$PORT/ | "$PY" -c "import json, sys
r = json.load(sys.stdin)
print(\"wstool bench --window 1: %d round trips in %.2f CPU-s: %.0f round trips/CPU-s, p50 %.3f ms\" % (
    r[\"messages\"][\"received\"], r[\"generator\"][\"cpu_s\"], r[\"generator\"][\"messages_per_cpu_s\"], r[\"latency\"][\"p50\"] * 1e3))"
kill -TERM $SERVER; wait $SERVER || true
rm -rf "$TMP"
' sh "$ART_DIR" "$SENDS" "$PY"
