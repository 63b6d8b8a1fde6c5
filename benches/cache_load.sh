#!/usr/bin/env bash
# Cache hits of a localized page against nginx proxy_cache hits and the origin, in one run:
#
#   benches/cache_load.sh [seconds per run, default 10] [connections, default 64]
#
#   a) edgeseo cache hits of /id/products/air-fryer-4-5l (the rewritten ~61 KB page)
#   b) nginx proxy_cache hits of the same origin page (nginx installed if missing)
#   c) the origin (edgeseo's embedded demo site) served directly
#
# Then 10,000 distinct localized pages are cached and edgeseo's resident memory is compared with
# the bytes the cache holds.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

DURATION=${1:-10}
CONNS=${2:-64}
PAGE=/products/air-fryer-4-5l
ORIGIN=127.0.0.1:18281
EDGE=127.0.0.1:18280
ADMIN=127.0.0.1:18284
NGINX=127.0.0.1:18282
TOKEN=bench-admin-token-0123456789

need wrk wrk
need nginx nginx-light
cargo build --release --quiet

scratch
demo_origin "$ORIGIN" 127.0.0.1:18283
seo_site "$work/rules/seo" "$ORIGIN"
printf '[cache]\nmax_size = "2GiB"\n[admin]\ntoken = "%s"\n' "$TOKEN" > "$work/rules/server.toml"
./target/release/edgeseo serve --rules "$work/rules" --listen "$EDGE" --admin "$ADMIN" >/dev/null 2>&1 &
EDGE_PID=$!
PIDS+=($EDGE_PID)
for _ in $(seq 100); do curl -fs -o /dev/null -H "Host: seo.test" "http://$EDGE/id$PAGE" && break; sleep 0.1; done

mkdir -p "$work/nginx-cache"
cat > "$work/nginx.conf" <<NGINX
user $(id -un);
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=pages:10m max_size=1g inactive=60m;
  upstream origin { server $ORIGIN; keepalive 64; }
  server {
    listen $NGINX;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache pages;
      proxy_cache_valid 200 10m;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 50); do curl -fs -o /dev/null "http://$NGINX$PAGE" && break; sleep 0.1; done

echo "edgeseo: $(curl -fsI -H 'Host: seo.test' "http://$EDGE/id$PAGE" | grep -i '^x-edgeseo-cache' | tr -d '\r')," \
  "nginx: $(curl -fsI "http://$NGINX$PAGE" | grep -i '^x-cache' | tr -d '\r')"
echo "page sizes: edgeseo /id/ $(curl -fs -H 'Host: seo.test' "http://$EDGE/id$PAGE" | wc -c) B," \
  "nginx $(curl -fs "http://$NGINX$PAGE" | wc -c) B, origin $(curl -fs "http://$ORIGIN$PAGE" | wc -c) B"
echo "wrk -t1 -c$CONNS -d${DURATION}s, $(nproc) cores shared by wrk and the servers"

for warm in "http://$EDGE/id$PAGE seo.test" "http://$NGINX$PAGE x" "http://$ORIGIN$PAGE x"; do
  set -- $warm; wrk -t1 -c"$CONNS" -d2s -H "Host: $2" "$1" >/dev/null
done
read -r a_rps a_p99 _ < <(measure "http://$EDGE/id$PAGE" seo.test)
read -r b_rps b_p99 _ < <(measure "http://$NGINX$PAGE" localhost)
read -r c_rps c_p99 _ < <(measure "http://$ORIGIN$PAGE" localhost)

printf "%-36s %12s %10s\n" "" "requests/s" "p99 ms"
printf "%-36s %12s %10s\n" "a) edgeseo cache hit (/id/, localized)" "$a_rps" "$a_p99"
printf "%-36s %12s %10s\n" "b) nginx proxy_cache hit" "$b_rps" "$b_p99"
printf "%-36s %12s %10s\n" "c) origin direct" "$c_rps" "$c_p99"
awk -v a="$a_rps" -v b="$b_rps" -v c="$c_rps" 'BEGIN {printf "ratios: a/b %.2fx   a/c %.2fx\n", a/b, a/c}'

# Memory: 10,000 distinct localized pages in the cache.
cat > "$work/distinct.lua" <<'LUA'
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "/id/products/air-fryer-4-5l?v=" .. (counter % 10000))
end
LUA
rss_before=$(awk '/VmRSS/ {print $2}' /proc/$EDGE_PID/status)
wrk -t1 -c16 -d20s -s "$work/distinct.lua" -H "Host: seo.test" "http://$EDGE" >/dev/null
metrics=$(curl -fs -H "Authorization: Bearer $TOKEN" "http://$ADMIN/metrics")
entries=$(echo "$metrics" | awk '/^edgeseo_cache_entries/ {print $2}')
bytes=$(echo "$metrics" | awk '/^edgeseo_cache_bytes/ {print $2}')
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$EDGE_PID/status)
awk -v e="$entries" -v b="$bytes" -v r0="$rss_before" -v r1="$rss_after" 'BEGIN {
  printf "cached: %d entries, %.1f MiB counted; edgeseo RSS %.1f MiB -> %.1f MiB; RSS growth per cached byte %.2f\n",
    e, b/1048576, r0/1024, r1/1024, (r1-r0)*1024/b }'
