#!/usr/bin/env bash
# Chat throughput with quotas counted in Redis ([fleet]) against the same quotas counted by the
# instance alone, in one run: the demo's chat with its loopback exemption removed, so that every
# request takes the per-IP and the global quota (two Redis round trips with [fleet]).
#
#   benches/fleet_load.sh [seconds per run, default 10] [connections, default 64]
#
# Runs local, Redis, local again, and reports Redis against the mean of the local runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

DURATION=${1:-10}
CONNS=${2:-64}
EDGE=127.0.0.1:18080
REDIS_PORT=18379

need wrk wrk
need redis-server redis-server
cargo build --release --quiet

work=$(mktemp -d)
LUA="$work/bodies.lua"
cp -r rules "$work/local"
# Quotas far above what two cores reach, taken by every request: no exemption for loopback.
sed -i -e 's/^exempt = .*/exempt = []/' -e 's/^per_ip_per_minute = .*/per_ip_per_minute = 1000000/' \
  "$work/local/demo-supplier/site.toml"
cp -r "$work/local" "$work/fleet"
printf '\n[fleet]\nredis = "redis://127.0.0.1:%s"\n' "$REDIS_PORT" >>"$work/fleet/server.toml"

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no --dir "$work" >/dev/null &
REDIS=$!
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; fi
  kill "$REDIS" 2>/dev/null; wait "$REDIS" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

chat_bodies tests/data/chat/heldout.csv >"$LUA"

run() { # run RULES_DIR: prints "rps p99 avg non2xx" of one measurement
  ./target/release/edgeseo demo --rules "$1" --listen "$EDGE" >/dev/null 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -fs -o /dev/null "http://$EDGE/" && break; sleep 0.1; done
  wrk -t1 -c"$CONNS" -d2s -s "$LUA" "http://$EDGE/api/chat" >/dev/null
  measure "http://$EDGE/api/chat" localhost -s "$LUA"
  kill "$PID"; wait "$PID" 2>/dev/null || true
  PID=
}

echo "chat with every request under the per-IP and global quotas; wrk -t1 -c$CONNS -d${DURATION}s, $(nproc) cores shared by wrk, edgeseo and redis-server"
read -r l1_rps l1_p99 l1_avg l1_bad < <(run "$work/local")
read -r r_rps r_p99 r_avg r_bad < <(run "$work/fleet")
read -r l2_rps l2_p99 l2_avg l2_bad < <(run "$work/local")
printf "%-34s %12s %10s %10s %8s\n" "" "requests/s" "avg ms" "p99 ms" "non-2xx"
printf "%-34s %12s %10s %10s %8s\n" "local quotas (first)" "$l1_rps" "$l1_avg" "$l1_p99" "$l1_bad"
printf "%-34s %12s %10s %10s %8s\n" "quotas in Redis ([fleet])" "$r_rps" "$r_avg" "$r_p99" "$r_bad"
printf "%-34s %12s %10s %10s %8s\n" "local quotas (again)" "$l2_rps" "$l2_avg" "$l2_p99" "$l2_bad"
awk -v r="$r_rps" -v a="$l1_rps" -v b="$l2_rps" 'BEGIN {printf "ratio Redis/local: %.2fx\n", 2 * r / (a + b)}'
