#!/usr/bin/env bash
# Lighthouse accessibility of the demo as a buyer sees it through edgeseo, mobile and desktop:
#
#   benches/lighthouse.sh [path ...]   (default: the air fryer product page in en and id, the
#                                       home page, and the Thai contact page)
#
# Prints each page's score and any audit that fails, and exits non-zero when a score is below 1.
# Installs Chromium (Debian) and Lighthouse (npm) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh

EDGE=127.0.0.1:18190
PAGES=("$@")
[ ${#PAGES[@]} -gt 0 ] || PAGES=(/products/air-fryer-4-5l /id/products/air-fryer-4-5l / /th/contact)

need chromium chromium
command -v lighthouse >/dev/null || npm install -g --silent lighthouse >/dev/null
cargo build --release --quiet

work=$(mktemp -d)
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

./target/release/edgeseo demo --listen "$EDGE" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -fso /dev/null "http://$EDGE/" && break; sleep 0.2; done

status=0
for path in "${PAGES[@]}"; do
  for form in mobile desktop; do
    preset=()
    [ "$form" = desktop ] && preset=(--preset=desktop)
    CHROME_PATH=$(command -v chromium) lighthouse "http://$EDGE$path" "${preset[@]}" \
      --only-categories=accessibility --quiet --output=json --output-path="$work/report.json" \
      --chrome-flags="--headless=new --no-sandbox --disable-gpu" 2>/dev/null
    python3 - "$work/report.json" "$path" "$form" <<'EOF' || status=1
import json, sys
report = json.load(open(sys.argv[1]))
score = report["categories"]["accessibility"]["score"]
print(f"{sys.argv[2]:<32} {sys.argv[3]:<8} accessibility {score * 100:.0f}")
for key, audit in report["audits"].items():
    if audit.get("scoreDisplayMode") == "binary" and audit.get("score") == 0:
        nodes = [i.get("node", {}).get("snippet", "")[:90] for i in audit.get("details", {}).get("items", [])]
        print(f"    {key}: {nodes[:3]}")
sys.exit(0 if score == 1 else 1)
EOF
  done
done
exit $status
