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
