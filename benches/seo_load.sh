#!/usr/bin/env bash
# Serving localized pages against plain proxying of the same page, in one run, with no cache:
#
#   benches/seo_load.sh [seconds per run, default 10] [connections, default 64]
#
#   plain     edgeseo proxying the ~60 KB demo product page untouched (a site without pages.toml)
#   localized edgeseo serving /id/ of the same page, rewritten as it streams
#   nginx     nginx proxy_pass + sub_filter injecting a head of the same size (context)
#
# All three front the same embedded demo origin; wrk, the proxies and the origin share two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

DURATION=${1:-10}
CONNS=${2:-64}
PAGE=/products/air-fryer-4-5l
ORIGIN=127.0.0.1:18181
EDGE=127.0.0.1:18180
NGINX=127.0.0.1:18182

need wrk wrk
need nginx nginx-light
cargo build --release --quiet

scratch
# The origin: the demo's embedded site on a fixed port (its own proxy listener is unused here).
demo_origin "$ORIGIN" 127.0.0.1:18183

# Two sites in one edgeseo: the demo's localized rules, and the same origin with no rewriting.
seo_site "$work/rules/seo" "$ORIGIN"
mkdir -p "$work/rules/plain"
printf 'hosts = ["plain.test"]\n[origin]\nurl = "http://%s"\n[cache]\nenabled = false\n' "$ORIGIN" > "$work/rules/plain/site.toml"
# No cache: every request is proxied (and, for the localized site, rewritten).
printf '\n[cache]\nenabled = false\n' >> "$work/rules/seo/site.toml"
./target/release/edgeseo check --rules "$work/rules" >/dev/null
./target/release/edgeseo serve --rules "$work/rules" --listen "$EDGE" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -fs -o /dev/null -H "Host: plain.test" "http://$EDGE$PAGE" && break; sleep 0.1; done

# nginx with the head edgeseo would inject, as a fixed string. nginx caps one configuration
# token at 4 KB, so head.conf sets the head in parts, joined in sub_filter's replacement.
head_vars=$(curl -fs -H "Host: seo.test" "http://$EDGE/id$PAGE" | python3 -c '
import sys
page = sys.stdin.read()
head = page[page.index("<meta name=\"description\""):page.index("</head>")]
for plain, entity in (("\\", "&#92;"), ("\x27", "&#39;"), ("$", "&#36;"), ("\n", " ")):
    head = head.replace(plain, entity)
parts = [head[i:i + 3000] for i in range(0, len(head), 3000)]
with open(sys.argv[1], "w") as conf:
    for n, part in enumerate(parts):
        conf.write(f"set $head{n} \x27{part}\x27;\n")
print("".join(f"$head{n}" for n in range(len(parts))))' "$work/head.conf")
cat > "$work/nginx.conf" <<NGINX
user $(id -un);
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream origin { server $ORIGIN; keepalive 64; }
  server {
    listen $NGINX;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Accept-Encoding "";
      include $work/head.conf;
      sub_filter_once on;
      sub_filter '</head>' '$head_vars</head>';
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 50); do curl -fs -o /dev/null "http://$NGINX$PAGE" && break; sleep 0.1; done

plain_size=$(curl -fs -H "Host: plain.test" "http://$EDGE$PAGE" | wc -c)
seo_size=$(curl -fs -H "Host: seo.test" "http://$EDGE/id$PAGE" | wc -c)
nginx_size=$(curl -fs "http://$NGINX$PAGE" | wc -c)
echo "page $PAGE: plain $plain_size B, localized $seo_size B, nginx sub_filter $nginx_size B"
echo "wrk -t1 -c$CONNS -d${DURATION}s, $(nproc) cores shared by wrk, proxies and origin"

for warm in "http://$EDGE$PAGE plain.test" "http://$EDGE/id$PAGE seo.test" "http://$NGINX$PAGE x"; do
  set -- $warm; wrk -t1 -c"$CONNS" -d2s -H "Host: $2" "$1" >/dev/null
done
read -r plain_rps plain_p99 _ < <(measure "http://$EDGE$PAGE" plain.test)
read -r seo_rps seo_p99 _ < <(measure "http://$EDGE/id$PAGE" seo.test)
read -r nginx_rps nginx_p99 _ < <(measure "http://$NGINX$PAGE" localhost)

printf "%-34s %12s %10s\n" "" "requests/s" "p99 ms"
printf "%-34s %12s %10s\n" "edgeseo plain proxy" "$plain_rps" "$plain_p99"
printf "%-34s %12s %10s\n" "edgeseo localized (/id/, rewrite)" "$seo_rps" "$seo_p99"
printf "%-34s %12s %10s\n" "nginx proxy_pass + sub_filter" "$nginx_rps" "$nginx_p99"
awk -v s="$seo_rps" -v p="$plain_rps" -v n="$nginx_rps" \
  'BEGIN {printf "ratio localized/plain: %.2fx   localized/nginx sub_filter: %.2fx\n", s/p, s/n}'
