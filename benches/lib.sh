# Shared by the load scripts in benches/: installing peers and measuring one URL with wrk.
# Expects CONNS and DURATION to be set by the sourcing script.

# need COMMAND DEBIAN_PACKAGE: installs the package when the command is missing.
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }

# measure URL HOST: prints "requests_per_second p99_ms" of one wrk run.
measure() {
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $2" "$1" |
    awk '/Requests\/sec/ {rps=$2}
         /^ +99%/ {v=$2; ms=v+0; if (v ~ /us$/) ms/=1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) ms*=1000; p99=ms}
         END {printf "%.0f %.2f\n", rps, p99}'
}
