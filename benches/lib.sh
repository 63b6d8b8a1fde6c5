# Shared by the load scripts in benches/: installing peers and measuring one URL with wrk.
# Expects CONNS and DURATION to be set by the sourcing script.

# need COMMAND DEBIAN_PACKAGE: installs the package when the command is missing.
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }

# measure URL HOST [WRK ARGS...]: prints "requests_per_second p99_ms avg_ms non_2xx_3xx" of one
# wrk run.
measure() {
  local url=$1 host=$2
  shift 2
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $host" "$@" "$url" |
    awk 'function ms(v) { x = v + 0; if (v ~ /us$/) return x / 1000; if (v ~ /ms$/) return x; if (v ~ /s$/) return x * 1000; return x }
         /Requests\/sec/ {rps=$2}
         /^ +Latency +[0-9]/ {avg=ms($2)}
         /^ +99%/ {p99=ms($2)}
         /Non-2xx or 3xx/ {bad=$NF}
         END {printf "%.0f %.2f %.2f %d\n", rps, p99, avg, bad}'
}

# chat_bodies CSV: a wrk Lua script POSTing each message of a chat file (its `text` column, or
# `question` in a regulatory question set) to /api/chat in turn, JSON-escaped by Python.
chat_bodies() {
  python3 - "$1" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
print("local bodies = {")
for r in rows:
    text = r["text"] if "text" in r else r["question"]
    print("  [==[" + json.dumps({"message": text}, ensure_ascii=False) + "]==],")
print("}")
print("""local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, "/api/chat", nil, bodies[i])
end""")
PY
}

# scratch: a temporary directory in $work, removed on exit together with the processes in PIDS
# and an nginx whose pid file is $work/nginx.pid.
scratch() {
  work=$(mktemp -d)
  PIDS=()
  trap scratch_cleanup EXIT
}
scratch_cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}

# demo_origin ORIGIN UNUSED_LISTEN: the demo's embedded site served at ORIGIN (the demo's own
# proxy listens on UNUSED_LISTEN and is not measured).
demo_origin() {
  ./target/release/edgeseo demo --listen "$2" --origin-listen "$1" >/dev/null 2>&1 &
  PIDS+=($!)
}

# seo_site DIR ORIGIN: the demo's localized rules as the site in DIR, answering for seo.test and
# fronting ORIGIN.
seo_site() {
  mkdir -p "$1"
  cp -r rules/demo-supplier/. "$1/"
  sed -i -e 's/^hosts = .*/hosts = ["seo.test"]/' -e "s|^embedded = \"demo\"|url = \"http://$2\"|" "$1/site.toml"
}
