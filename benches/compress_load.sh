#!/usr/bin/env bash
# Compression at the edge on the demo: bytes a browser receives and cache-hit throughput, with a
# build that compresses against one that does not, in one run:
#
#   benches/compress_load.sh BEFORE_BINARY [seconds per run, default 8] [connections, default 64]
#
# BEFORE_BINARY is an edgeseo built from a commit before compression at the edge (e.g.
# `git worktree add /tmp/before e4f95a3 && cargo build --release --manifest-path /tmp/before/Cargo.toml`).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

BEFORE=${1:?usage: benches/compress_load.sh BEFORE_BINARY [seconds] [connections]}
DURATION=${2:-8}
CONNS=${3:-64}
EDGE=127.0.0.1:18380
BROWSER="gzip, deflate, br, zstd"

need wrk wrk
cargo build --release --quiet

for bin in "$BEFORE" target/release/edgeseo; do
  "$bin" demo --listen "$EDGE" >/dev/null 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null' EXIT
  for _ in $(seq 50); do curl -sf -o /dev/null "http://$EDGE/" && break; sleep 0.1; done
  for path in /id/products/air-fryer-4-5l /th/faq /__edgeseo/widget.js; do
    curl -s -o /dev/null -H "Accept-Encoding: $BROWSER" "http://$EDGE$path" # fills the cache
    bytes=$(curl -s -H "Accept-Encoding: $BROWSER" "http://$EDGE$path" | wc -c)
    echo "$bin $path bytes=$bytes"
  done
  for accept in identity "$BROWSER"; do
    read -r rps p99 avg bad < <(measure "http://$EDGE/id/products/air-fryer-4-5l" 127.0.0.1 \
      -H "Accept-Encoding: $accept")
    echo "$bin hits Accept-Encoding=[$accept] req/s=$rps p99_ms=$p99 avg_ms=$avg non2xx=$bad"
  done
  kill $pid
  wait $pid 2>/dev/null || true
done
