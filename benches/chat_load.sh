#!/usr/bin/env bash
# Throughput and latency of the demo's chat endpoint (language ID, intent, knowledge-base answer)
# under load, against a static edge response of the same process as the baseline, in one run.
#
#   benches/chat_load.sh [seconds per run, default 10] [connections, default 64]
#
# The messages are the held-out chat file (tests/data/chat/heldout.csv, four languages), posted in
# turn by wrk; a second run posts the regulatory development questions
# (tests/data/chat/kb/dev.csv), each answered by retrieval from the regulatory knowledge base. The load comes from 127.0.0.1, which the demo exempts from the per-IP and
# per-session quotas as a certifier's load generator would be; the global quota still applies.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

DURATION=${1:-10}
CONNS=${2:-64}
EDGE=127.0.0.1:18080

need wrk wrk
cargo build --release --quiet

LUA=$(mktemp --suffix=.lua)
KB_LUA=$(mktemp --suffix=.lua)
./target/release/edgeseo demo --listen "$EDGE" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true; rm -f "$LUA" "$KB_LUA"' EXIT

# One request body per held-out message, JSON-escaped by Python, cycled through by wrk.
chat_bodies tests/data/chat/heldout.csv >"$LUA"
chat_bodies tests/data/chat/kb/dev.csv >"$KB_LUA"

for _ in $(seq 100); do curl -fs -o /dev/null "http://$EDGE/" && break; sleep 0.1; done
messages=$(($(wc -l <tests/data/chat/heldout.csv) - 1))
echo "chat: $messages held-out messages in turn; wrk -t1 -c$CONNS -d${DURATION}s, $(nproc) cores shared by wrk and edgeseo"

wrk -t1 -c"$CONNS" -d2s -s "$LUA" "http://$EDGE/api/chat" >/dev/null
read -r static_rps static_p99 static_avg _ < <(measure "http://$EDGE/__edgeseo/widget.js" localhost)
read -r chat_rps chat_p99 chat_avg chat_bad < <(measure "http://$EDGE/api/chat" localhost -s "$LUA")
read -r kb_rps kb_p99 kb_avg kb_bad < <(measure "http://$EDGE/api/chat" localhost -s "$KB_LUA")

[ -n "$static_rps" ] && [ -n "$chat_rps" ] && [ -n "$kb_rps" ] || { echo "wrk produced no figures" >&2; exit 1; }
printf "%-30s %12s %10s %10s\n" "" "requests/s" "avg ms" "p99 ms"
printf "%-30s %12s %10s %10s\n" "static edge response (widget.js)" "$static_rps" "$static_avg" "$static_p99"
printf "%-30s %12s %10s %10s\n" "chat answer (POST /api/chat)" "$chat_rps" "$chat_avg" "$chat_p99"
printf "%-30s %12s %10s %10s\n" "regulatory answer (same)" "$kb_rps" "$kb_avg" "$kb_p99"
echo "non-2xx chat responses: $chat_bad, regulatory: $kb_bad"
if [ "$chat_bad" -gt 0 ] || [ "$kb_bad" -gt 0 ]; then
  echo "warning: some answers were errors (429 from the global quota?); requests/s counts them too" >&2
fi
awk -v c="$chat_rps" -v s="$static_rps" -v p="$chat_p99" -v k="$kb_rps" -v q="$kb_p99" \
  'BEGIN {printf "ratio chat/static: throughput %.2fx, regulatory %.2fx; target >= 5000 req/s with p99 <= 50 ms: chat %s, regulatory %s\n", c/s, k/s, (c >= 5000 && p <= 50) ? "met" : "missed", (k >= 5000 && q <= 50) ? "met" : "missed"}'
