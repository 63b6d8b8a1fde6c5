#!/usr/bin/env bash
# Cache hits against nginx serving the same bytes as a static file, in one run:
#
#   benches/hit_load.sh [seconds per run, default 10] [connections, default 64]
#
# For the rendered ~20 KB /id/faq and ~60 KB /id/products/air-fryer-4-5l pages:
#   edgeseo  the page from its cache (the demo's rules, the embedded demo site as origin)
#   nginx    the bytes edgeseo sent, saved as files and served static (sendfile, open file cache)
# over HTTP/1.1 (wrk) and HTTP/2 without TLS, prior knowledge (h2load, 10 streams a connection).
# Prints requests/s of each and the ratio edgeseo/nginx per page and protocol. Both servers and
# the load generator share this machine's cores; nginx runs one worker per core.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

DURATION=${1:-10}
CONNS=${2:-64}
ORIGIN=127.0.0.1:18291
EDGE=127.0.0.1:18290
NGINX1=127.0.0.1:18292
NGINX2=127.0.0.1:18293

need wrk wrk
need nginx nginx-light
need h2load nghttp2-client
cargo build --release --quiet

scratch
demo_origin "$ORIGIN" 127.0.0.1:18294
seo_site "$work/rules/seo" "$ORIGIN"
mkdir -p "$work/www"
printf '[cache]\nmax_size = "256MiB"\n' > "$work/rules/server.toml"
./target/release/edgeseo serve --rules "$work/rules" --listen "$EDGE" >/dev/null 2>&1 &
PIDS+=($!)

PAGES=(/id/faq /id/products/air-fryer-4-5l)
for page in "${PAGES[@]}"; do
  for _ in $(seq 100); do curl -fs -o /dev/null -H "Host: seo.test" "http://$EDGE$page" && break; sleep 0.1; done
  # The second request is a hit; its body is what nginx serves.
  curl -fs -D "$work/headers" -H "Host: seo.test" "http://$EDGE$page" -o "$work/www/$(basename "$page").html"
  grep -qi '^x-edgeseo-cache: hit' "$work/headers" || { echo "edgeseo did not serve $page from its cache" >&2; exit 1; }
done

cat > "$work/nginx.conf" <<NGINX
user $(id -un);
worker_processes $(nproc);
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  open_file_cache max=100;
  keepalive_requests 1000000;
  default_type text/html;
  server { listen $NGINX1; root $work/www; }
  server { listen $NGINX2 http2; root $work/www; }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work"
for _ in $(seq 50); do curl -fs -o /dev/null "http://$NGINX1/faq.html" && break; sleep 0.1; done

# h2load_rps URL [HEADER]: requests/s of one h2load run; exits unless every request got a 2xx.
h2load_rps() {
  local out
  out=$(h2load -t1 -c"$CONNS" -m10 -D"$DURATION" ${2:+-H "$2"} "$1")
  echo "$out" | awk '/^requests:/ {done = $8; failed = $10}
                     /^status codes:/ {ok = $3}
                     /^finished in/ {gsub(",", "", $4); rps = $4}
                     END {if (failed > 0 || ok < done) {print "h2load: " failed " failed, " ok " 2xx of " done > "/dev/stderr"; exit 1}
                          printf "%.0f\n", rps}'
}

echo "wrk -t1 -c$CONNS -d${DURATION}s; h2load -t1 -c$CONNS -m10 -D$DURATION; $(nproc) cores shared by the load generator and the servers"
printf "%-44s %12s %12s %8s\n" "" "edgeseo" "nginx" "ratio"
for page in "${PAGES[@]}"; do
  file=$(basename "$page").html
  size=$(wc -c < "$work/www/$file")
  wrk -t1 -c"$CONNS" -d2s -H "Host: seo.test" "http://$EDGE$page" >/dev/null
  wrk -t1 -c"$CONNS" -d2s "http://$NGINX1/$file" >/dev/null
  read -r e1 _ _ e1_bad < <(measure "http://$EDGE$page" seo.test)
  read -r n1 _ _ n1_bad < <(measure "http://$NGINX1/$file" localhost)
  [ "$e1_bad$n1_bad" = "00" ] || { echo "non-2xx answers: edgeseo $e1_bad, nginx $n1_bad" >&2; exit 1; }
  e2=$(h2load_rps "http://$EDGE$page" ":authority: seo.test")
  n2=$(h2load_rps "http://$NGINX2/$file")
  for row in "HTTP/1.1 $e1 $n1" "HTTP/2 $e2 $n2"; do
    set -- $row
    awk -v p="$page ($size B), $1" -v e="$2" -v n="$3" \
      'BEGIN {printf "%-44s %12d %12d %7.2fx\n", p, e, n, e / n}'
  done
done
