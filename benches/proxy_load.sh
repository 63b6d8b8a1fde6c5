#!/usr/bin/env bash
# Throughput and tail latency of edgeseo proxying the demo site, against the demo origin served
# directly, measured in one run on the same machine with the same load generator (wrk).
#
#   benches/proxy_load.sh [seconds per run, default 10] [connections, default 64]
#
# The demo origin and the proxy run in one edgeseo process (`edgeseo demo`), so the direct run
# measures the origin alone and the proxied run measures origin + proxy on the same two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

DURATION=${1:-10}
CONNS=${2:-64}
PAGE=${PAGE:-/products/air-fryer-4-5l}
PROXY=127.0.0.1:18080
ORIGIN=127.0.0.1:18081

need wrk wrk
cargo build --release --quiet

./target/release/edgeseo demo --listen "$PROXY" --origin-listen "$ORIGIN" >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs -o /dev/null "http://$PROXY/" && break; sleep 0.1; done

size=$(curl -fs "http://$ORIGIN$PAGE" | wc -c)
echo "page $PAGE: $size bytes; wrk -t1 -c$CONNS -d${DURATION}s, $(nproc) cores shared by wrk, proxy and origin"


# Warm both paths (connection pools, page cache of the kernel) before measuring.
wrk -t1 -c"$CONNS" -d2s -H "Host: 127.0.0.1" "http://$ORIGIN$PAGE" >/dev/null
wrk -t1 -c"$CONNS" -d2s -H "Host: 127.0.0.1" "http://$PROXY$PAGE" >/dev/null

read -r origin_rps origin_p99 _ < <(measure "http://$ORIGIN$PAGE" 127.0.0.1)
read -r proxy_rps proxy_p99 _ < <(measure "http://$PROXY$PAGE" 127.0.0.1)

printf "%-22s %12s %10s\n" "" "requests/s" "p99 ms"
printf "%-22s %12s %10s\n" "origin direct" "$origin_rps" "$origin_p99"
printf "%-22s %12s %10s\n" "edgeseo proxy" "$proxy_rps" "$proxy_p99"
awk -v p="$proxy_rps" -v o="$origin_rps" -v pl="$proxy_p99" -v ol="$origin_p99" \
  'BEGIN {printf "ratio proxy/origin: throughput %.2fx, p99 %.2fx\n", p/o, pl/ol}'
